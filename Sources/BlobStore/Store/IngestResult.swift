/// What an ingest stored.
public struct IngestResult: Sendable, Equatable, Codable {
    public var digest: Digest
    public var size: UInt64
    public var chunkCount: Int
    /// Chunks this blob added to the store (the rest were already there).
    public var newChunks: Int
    /// Pack bytes this blob added to the store.
    public var storedBytes: UInt64
    /// The blob was already in the store before this ingest.
    public var alreadyPresent: Bool
}

extension Digest: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let d = Digest(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a sha256 digest: \(text)"))
        }
        self = d
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

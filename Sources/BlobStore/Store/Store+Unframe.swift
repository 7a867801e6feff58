extension Store {
    /// The raw bytes of framed chunks (all in one pack), each frame decoded once for all of
    /// its members listed, every member hashed against its key. A frame that fails leaves
    /// its members' slots as the error. For compaction and settling, which move framed
    /// chunks out of a pack and must never vouch for damaged bytes with a new CRC.
    package func decodeFramed(_ members: [(key: Digest, location: ChunkLocation)], parallel: Bool) -> [Result<[UInt8], Error>] {
        var frames: [PackPosition: [Int]] = [:]
        for (i, m) in members.enumerated() {
            frames[PackPosition(pack: m.location.packID, offset: m.location.frameStart), default: []].append(i)
        }
        let groups = Array(frames.values)
        var results = [Result<[UInt8], Error>?](repeating: nil, count: members.count)
        results.withUnsafeMutableBufferPointer { slots in
            let base = slots.baseAddress!
            let one = { (g: Int) in
                let sizes = groups[g].map { Int(members[$0].location.rawSize) }
                let offsets = sizes.indices.map { sizes[..<$0].reduce(0, +) }
                var decoded = [UInt8](repeating: 0, count: sizes.reduce(0, +))
                do {
                    try decoded.withUnsafeMutableBytes { buffer in
                        try self.readFramed(groups[g].enumerated().map { m, i in
                            (members[i].key, members[i].location, UnsafeMutableRawBufferPointer(rebasing: buffer[offsets[m]..<offsets[m] + sizes[m]]))
                        }, verify: true)
                    }
                    for (m, i) in groups[g].enumerated() { base[i] = .success(Array(decoded[offsets[m]..<offsets[m] + sizes[m]])) }
                } catch {
                    for i in groups[g] { base[i] = .failure(error) }
                }
            }
            if parallel { parallelFor(groups.count, one) } else { for g in groups.indices { one(g) } }
        }
        return results.map { $0! }
    }

    /// A chunk's bytes as a record of its own, as ingest would write it (the store's level,
    /// raw unless that saves ~3%): what compaction copies when the rest of its frame is dead.
    package func standaloneRecord(_ raw: [UInt8]) -> (flags: ChunkFlags, payload: [UInt8]) {
        guard config.compressionLevel != 0, !raw.isEmpty else { return ([], raw) }
        var frame = [UInt8](repeating: 0, count: ZstdCompressor.bound(raw.count))
        let written = raw.withUnsafeBytes { source in
            frame.withUnsafeMutableBytes { destination in compressors.withElement { $0.compress(source, into: destination) } }
        }
        guard let written, ZstdCompressor.saves(written, of: raw.count) else { return ([], raw) }
        frame.removeSubrange(written...)
        return (.zstd, frame)
    }
}

import Foundation

/// `blobctl serve --config FILE`: everything the server can be told, as JSON. Every field
/// is optional; command-line flags override the file.
///
///     {
///       "address": "127.0.0.1:5000",
///       "readOnly": false,
///       "tls": { "certificate": "/etc/blobstore/cert.pem", "key": "/etc/blobstore/key.pem" },
///       "auth": { "htpasswd": "/etc/blobstore/htpasswd", "tokens": ["s3cret-token"], "realm": "blobstore",
///                 "credentialCacheSeconds": 60, "failuresPerMinute": 10 },
///       "limits": { "maxManifestBytes": 4194304, "maxBlobBytes": 68719476736, "chunkCacheBytes": 134217728,
///                   "maxUploadSessions": 256, "maxConcurrentRequests": 256, "maxConcurrentWrites": 8,
///                   "writeWaitSeconds": 30, "maxConnections": 1024, "maxConnectionsPerClient": 64,
///                   "requestHeadTimeoutSeconds": 10, "idleTimeoutSeconds": 60,
///                   "blockingThreads": 16 },
///       "gc": { "intervalSeconds": 60, "uploadLeaseSeconds": 3600, "settleIdleSeconds": 60 },
///       "logLevel": "info"
///     }
public struct RegistryConfiguration: Codable, Sendable {
    public struct TLS: Codable, Sendable {
        public var certificate: String
        public var key: String
        public init(certificate: String, key: String) { self.certificate = certificate; self.key = key }
    }

    public struct Auth: Codable, Sendable {
        /// An htpasswd file of bcrypt entries (`htpasswd -B`).
        public var htpasswd: String?
        /// Bearer tokens accepted as `Authorization: Bearer <token>`.
        public var tokens: [String]?
        public var realm: String?
        /// How long a verified user:password pair is remembered, so bcrypt runs once per
        /// client and not on every request (default 60; 0: verify every time).
        public var credentialCacheSeconds: Double?
        /// Failed authentications a client address may make per minute before it is
        /// answered 429 (default 10; 0: no limit).
        public var failuresPerMinute: Int?
        public init(htpasswd: String?, tokens: [String]?, realm: String?) { self.htpasswd = htpasswd; self.tokens = tokens; self.realm = realm }
    }

    public struct Limits: Codable, Sendable {
        /// Largest manifest accepted (the spec suggests at least 4 MiB).
        public var maxManifestBytes: Int?
        /// Largest blob accepted (default 64 GiB; 0: no limit).
        public var maxBlobBytes: UInt64?
        /// Memory for decompressed chunks shared by concurrent pulls (default 128 MiB; 0: off).
        public var chunkCacheBytes: Int?
        /// Upload sessions open at once; a new one beyond is answered 429 (default 256). Each
        /// keeps an index row (its state, and the bytes after its last chunk boundary: less
        /// than the largest chunk, 512 KiB by default) until it finishes or its lease runs out.
        public var maxUploadSessions: Int?
        /// Requests in progress at once, response bodies included; beyond, 503 (default 256).
        public var maxConcurrentRequests: Int?
        /// Requests streaming a body into the store at once, each holding up to ~50 MiB
        /// (segment, compression and network buffers, with the allocator's overhead);
        /// others wait up to `writeWaitSeconds` for a turn, then get 503 (default 8).
        public var maxConcurrentWrites: Int?
        public var writeWaitSeconds: Double?
        /// Open connections, in total and from one client address; one beyond is closed at
        /// once (defaults 1024 and 64).
        public var maxConnections: Int?
        public var maxConnectionsPerClient: Int?
        /// A new connection must send its first request head within this (default 10).
        public var requestHeadTimeoutSeconds: Double?
        /// A connection with no request in progress and nothing read for this long is
        /// closed (default 60).
        public var idleTimeoutSeconds: Double?
        /// Threads doing blocking store work (LMDB, chunking, compression, disk I/O) (default 16).
        public var blockingThreads: Int?
    }

    public struct GC: Codable, Sendable {
        /// Seconds between background collections; 0 turns them off.
        public var intervalSeconds: Double?
        /// How long an upload keeps its blob alive waiting for a manifest, and how long an
        /// abandoned upload lingers before it is collected.
        public var uploadLeaseSeconds: UInt64?
        /// After this many seconds with no request in progress, packs pushed at the fast
        /// level are rewritten at the settled level, at idle CPU priority, until a request
        /// comes (default 60; 0: never, leave it to `blobctl settle`).
        public var settleIdleSeconds: Double?
        public init(intervalSeconds: Double?, uploadLeaseSeconds: UInt64?, settleIdleSeconds: Double? = nil) {
            self.intervalSeconds = intervalSeconds
            self.uploadLeaseSeconds = uploadLeaseSeconds
            self.settleIdleSeconds = settleIdleSeconds
        }
    }

    public var address: String?
    public var readOnly: Bool?
    public var tls: TLS?
    public var auth: Auth?
    public var limits: Limits?
    public var gc: GC?
    public var logLevel: String?

    public init() {}

    public static func load(_ path: String) throws -> RegistryConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RegistryConfigurationError("cannot read config file \(path)")
        }
        do {
            return try JSONDecoder().decode(RegistryConfiguration.self, from: data)
        } catch {
            throw RegistryConfigurationError("config file \(path) is not valid: \(error)")
        }
    }

    var maxManifestBytes: Int { limits?.maxManifestBytes ?? 4 << 20 }
    var maxBlobBytes: UInt64 { limits?.maxBlobBytes ?? 64 << 30 }
    var chunkCacheBytes: Int { limits?.chunkCacheBytes ?? 128 << 20 }
    var maxUploadSessions: Int { limits?.maxUploadSessions ?? 256 }
    var maxConcurrentRequests: Int { limits?.maxConcurrentRequests ?? 256 }
    var maxConcurrentWrites: Int { limits?.maxConcurrentWrites ?? 8 }
    var writeWaitSeconds: Double { limits?.writeWaitSeconds ?? 30 }
    var maxConnections: Int { limits?.maxConnections ?? 1024 }
    var maxConnectionsPerClient: Int { limits?.maxConnectionsPerClient ?? 64 }
    var requestHeadTimeoutSeconds: Double { limits?.requestHeadTimeoutSeconds ?? 10 }
    var idleTimeoutSeconds: Double { limits?.idleTimeoutSeconds ?? 60 }
    var blockingThreads: Int { limits?.blockingThreads ?? 16 }
    var credentialCacheSeconds: Double { auth?.credentialCacheSeconds ?? 60 }
    var authFailuresPerMinute: Int { auth?.failuresPerMinute ?? 10 }
    var uploadLeaseSeconds: UInt64 { gc?.uploadLeaseSeconds ?? 3600 }
    var gcInterval: Double { gc?.intervalSeconds ?? 60 }
    var settleIdleSeconds: Double { gc?.settleIdleSeconds ?? 60 }

    /// "host:port" split; IPv6 in brackets.
    func hostAndPort() throws -> (String, Int) {
        let text = address ?? "127.0.0.1:5000"
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw RegistryConfigurationError("address must be host:port, got \(text)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }
}

public struct RegistryConfigurationError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

import Foundation
import PostgresIndex

/// A node's cluster config file, the CONFIG of `blobctl init --cluster CONFIG` and of
/// `--store CONFIG` on every command: where the shared index and packs are, and this
/// node's own folder. Every node of a cluster has the same `index` and `packs`.
///
/// ```json
/// {
///   "index": { "url": "postgres://blobstore:secret@db.example:5432/blobstore", "schema": "registry" },
///   "packs": { "s3": { "endpoint": "http://rgw.example:7480", "bucket": "blobstore",
///                      "accessKey": "…", "secretKey": "…" } },
///   "node": { "directory": "/var/lib/blobstore/node" }
/// }
/// ```
public struct ClusterConfig: Codable, Sendable, Equatable {
    public var index: PostgresSettings
    public var packs: Packs
    public var node: Node

    /// Where pack files live: one of the two.
    public struct Packs: Codable, Sendable, Equatable {
        /// A folder every node mounts (a shared filesystem, or one machine's disk when the
        /// nodes run side by side).
        public var directory: String?
        /// A bucket of S3-compatible object storage (Ceph's radosgw).
        public var s3: ObjectStore?
        public init(directory: String? = nil, s3: ObjectStore? = nil) {
            self.directory = directory
            self.s3 = s3
        }
    }

    /// The object storage of `packs.s3`.
    public struct ObjectStore: Codable, Sendable, Equatable {
        /// http(s)://host:port of the S3 endpoint (radosgw's).
        public var endpoint: String
        public var bucket: String
        public var accessKey: String
        public var secretKey: String
        /// SigV4's region; radosgw takes its zonegroup's name ("default" unless set up).
        public var region: String
        /// Key prefix of pack objects, so a bucket can hold other things.
        public var prefix: String
        /// Path-style URLs (host/bucket/key), what radosgw expects unless its DNS is set up.
        public var pathStyle: Bool
        /// Memory for recently read pack blocks on each node, in MiB.
        public var cacheMiB: Int

        public init(endpoint: String, bucket: String, accessKey: String, secretKey: String, region: String = "default",
                    prefix: String = "packs/", pathStyle: Bool = true, cacheMiB: Int = 256) {
            self.endpoint = endpoint
            self.bucket = bucket
            self.accessKey = accessKey
            self.secretKey = secretKey
            self.region = region
            self.prefix = prefix
            self.pathStyle = pathStyle
            self.cacheMiB = cacheMiB
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            endpoint = try c.decode(String.self, forKey: .endpoint)
            bucket = try c.decode(String.self, forKey: .bucket)
            accessKey = try c.decode(String.self, forKey: .accessKey)
            secretKey = try c.decode(String.self, forKey: .secretKey)
            region = try c.decodeIfPresent(String.self, forKey: .region) ?? "default"
            prefix = try c.decodeIfPresent(String.self, forKey: .prefix) ?? "packs/"
            pathStyle = try c.decodeIfPresent(Bool.self, forKey: .pathStyle) ?? true
            cacheMiB = try c.decodeIfPresent(Int.self, forKey: .cacheMiB) ?? 256
        }
    }

    /// What belongs to this node alone: resumable uploads, liveness locks, scratch space.
    public struct Node: Codable, Sendable, Equatable {
        public var directory: String
        public init(directory: String) { self.directory = directory }
    }

    public init(index: PostgresSettings, packs: Packs, node: Node) {
        self.index = index
        self.packs = packs
        self.node = node
    }

    /// Reads a config file; paths in it may be relative to the file's folder.
    public static func load(path: String) throws -> ClusterConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ClusterConfigError("cannot read the cluster config \(path)")
        }
        var config: ClusterConfig
        do { config = try JSONDecoder().decode(ClusterConfig.self, from: data) } catch {
            throw ClusterConfigError("\(path) is not a valid cluster config: \(error)")
        }
        let folder = (path as NSString).deletingLastPathComponent
        func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : (folder.isEmpty ? p : folder + "/" + p) }
        config.packs.directory = config.packs.directory.map(absolute)
        config.node.directory = absolute(config.node.directory)
        try config.validate(path: path)
        return config
    }

    func validate(path: String) throws {
        do { try index.validate() } catch { throw ClusterConfigError("\(path): index: \(error)") }
        guard (packs.directory != nil) != (packs.s3 != nil) else {
            throw ClusterConfigError("\(path): packs must name one place: \"directory\" or \"s3\"")
        }
        if let s3 = packs.s3, s3.bucket.isEmpty || s3.endpoint.isEmpty || !(16...65536).contains(s3.cacheMiB) {
            throw ClusterConfigError("\(path): packs.s3 needs an endpoint and a bucket, and cacheMiB of 16 to 65536")
        }
        guard !node.directory.isEmpty else { throw ClusterConfigError("\(path): node.directory is empty") }
    }
}

public struct ClusterConfigError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}

import Foundation
import PostgresIndex

/// A node's cluster config file, the CONFIG of `blobctl init --cluster CONFIG` and of
/// `--store CONFIG` on every command: where the shared index and packs are, and this
/// node's own folder. Every node of a cluster has the same `index` and `packs`.
///
/// ```json
/// {
///   "index": { "url": "postgres://blobstore:secret@db.example:5432/blobstore", "schema": "registry" },
///   "packs": { "directory": "/srv/blobstore/packs" },
///   "node": { "directory": "/var/lib/blobstore/node" }
/// }
/// ```
public struct ClusterConfig: Codable, Sendable, Equatable {
    public var index: PostgresSettings
    public var packs: Packs
    public var node: Node

    /// Where pack files live.
    public struct Packs: Codable, Sendable, Equatable {
        /// A folder every node mounts (a shared filesystem, or one machine's disk when the
        /// nodes run side by side).
        public var directory: String?
        public init(directory: String? = nil) { self.directory = directory }
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
        guard packs.directory != nil else { throw ClusterConfigError("\(path): packs names no place (\"directory\")") }
        guard !node.directory.isEmpty else { throw ClusterConfigError("\(path): node.directory is empty") }
    }
}

public struct ClusterConfigError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}

import BlobStore
import Foundation
import Logging
import PostgresIndex

/// Opens and creates stores in cluster mode: the index in PostgreSQL, the packs where the
/// cluster config says, this node's own state in its folder. What comes back is an
/// ordinary `Store`; nothing above it knows it is shared.
public enum ClusterStore {
    /// The store's `StoreConfig`, kept in the index so every node chunks alike.
    static let configKey = Array("storeConfig".utf8)

    /// Creates the cluster's store (its schema, tables and config); fails when it exists.
    public static func create(configPath: String, storeConfig: StoreConfig, logger: Logger) throws -> Store {
        let cluster = try load(configPath)
        try storeConfig.validate()
        let index = try PostgresIndex(settings: cluster.index, databaseNames: Store.databaseNames, logger: logger)
        let encoded = try encode(storeConfig)
        try index.write { txn in
            if try txn.get("meta", configKey) != nil {
                throw BlobStoreError(.alreadyExists, "a store already exists in \(cluster.index.schema) at \(try cluster.index.endpoint().display)")
            }
            try txn.put("meta", configKey, encoded)
        }
        return try assemble(cluster, storeConfig, index, logger)
    }

    /// Opens the cluster's store on this node.
    public static func open(configPath: String, logger: Logger) throws -> Store {
        let cluster = try load(configPath)
        let index = try PostgresIndex(settings: cluster.index, databaseNames: Store.databaseNames, logger: logger)
        let raw = try index.read { txn in try txn.get("meta", configKey).map { Data($0) } }
        guard let raw else {
            throw BlobStoreError(.notFound, "no store in schema \(cluster.index.schema) at \(try cluster.index.endpoint().display) (run `blobctl init --cluster \(configPath)` first)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let storeConfig: StoreConfig
        do { storeConfig = try decoder.decode(StoreConfig.self, from: raw) } catch {
            throw BlobStoreError(.corrupt, "the store config in the index does not decode: \(error)")
        }
        guard storeConfig.formatVersion <= StoreConfig.currentFormatVersion else {
            throw BlobStoreError(.unsupportedFormat, "store format \(storeConfig.formatVersion) is newer than this blobctl supports (\(StoreConfig.currentFormatVersion))")
        }
        return try assemble(cluster, storeConfig, index, logger)
    }

    /// True when `path` names a cluster config file rather than a store folder.
    public static func isClusterConfig(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    private static func load(_ path: String) throws -> ClusterConfig {
        do { return try ClusterConfig.load(path: path) } catch let error as ClusterConfigError {
            throw BlobStoreError(.invalidArgument, error.description)
        }
    }

    private static func encode(_ config: StoreConfig) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return Array(try encoder.encode(config))
    }

    private static func assemble(_ cluster: ClusterConfig, _ storeConfig: StoreConfig, _ index: PostgresIndex, _ logger: Logger) throws -> Store {
        let packsDirectory = cluster.packs.directory!
        if mkdir(packsDirectory, 0o755) != 0 && errno != EEXIST {
            throw BlobStoreError(.io, "create the packs folder \(packsDirectory): \(String(cString: strerror(errno)))")
        }
        let packs = LocalPackBackend(directory: packsDirectory, sizeLimit: storeConfig.packSizeLimit)
        return try Store.assemble(root: cluster.node.directory, config: storeConfig, index: index, packs: packs,
                                 coordination: PostgresCoordination(index: index), logger: logger)
    }
}

import BlobStore
import Foundation
import Logging
import ObjectStorage
import PostgresIndex

/// Opens and creates stores in cluster mode: the index in PostgreSQL, the packs where the
/// cluster config says, this node's own state in its folder. What comes back is an
/// ordinary `Store`; nothing above it knows it is shared.
public enum ClusterStore {
    /// The store's `StoreConfig`, kept in the index so every node chunks alike.
    static let configKey = Store.storeConfigMetaKey

    /// Creates the cluster's store (its schema, tables and config); fails when it exists.
    public static func create(configPath: String, storeConfig: StoreConfig, logger: Logger) throws -> Store {
        let created = try createUnpublished(configPath: configPath, storeConfig: storeConfig, logger: logger)
        try created.publish()
        return created.store
    }

    /// Creates the cluster's store without publishing it, for `blobctl migrate`: its schema,
    /// tables and bucket exist, but no node opens it until `publish` writes its config, the
    /// last step. A migration that died half-way left such a store behind; it is reused.
    public static func createUnpublished(configPath: String, storeConfig: StoreConfig,
                                         logger: Logger) throws -> (store: Store, publish: () throws -> Void) {
        let cluster = try load(configPath)
        try storeConfig.validate()
        let index = try PostgresIndex(settings: cluster.index, databaseNames: Store.databaseNames, logger: logger)
        let encoded = try encode(storeConfig)
        let exists = { () throws -> BlobStoreError in
            BlobStoreError(.alreadyExists, "a store already exists in \(cluster.index.schema) at \(try cluster.index.endpoint().display)")
        }
        if try index.read({ txn in try txn.get("meta", configKey) != nil }) { throw try exists() }
        // The packs' place first (the bucket created), then the config that makes the store exist.
        let store = try assemble(cluster, storeConfig, index, logger, creating: true)
        let publish = {
            try index.write { txn in
                if try txn.get("meta", configKey) != nil { throw try exists() }
                try txn.put("meta", configKey, encoded)
            }
        }
        return (store, publish)
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

    private static func assemble(_ cluster: ClusterConfig, _ storeConfig: StoreConfig, _ index: PostgresIndex, _ logger: Logger,
                                 creating: Bool = false) throws -> Store {
        let coordination = PostgresCoordination(index: index)
        let packs: any PackBackend
        if let s3 = cluster.packs.s3 {
            let client: S3Client
            do {
                client = try S3Client(configuration: S3Configuration(endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket,
                                                                     accessKey: s3.accessKey, secretKey: s3.secretKey, pathStyle: s3.pathStyle),
                                      logger: logger)
                if creating { try client.createBucket() }
            } catch {
                throw ObjectStorePackBackend.storeError(error, doing: "object storage at \(s3.endpoint)")
            }
            packs = try ObjectStorePackBackend(client: client, prefix: s3.prefix, nodeDirectory: cluster.node.directory,
                                               sizeLimit: storeConfig.packSizeLimit, cacheBytes: s3.cacheMiB << 20,
                                               locks: coordination, logger: logger)
        } else {
            let directory = cluster.packs.directory!
            if mkdir(directory, 0o755) != 0 && errno != EEXIST {
                throw BlobStoreError(.io, "create the packs folder \(directory): \(String(cString: strerror(errno)))")
            }
            packs = LocalPackBackend(directory: directory, sizeLimit: storeConfig.packSizeLimit)
        }
        return try Store.assemble(root: cluster.node.directory, config: storeConfig, index: index, packs: packs,
                                  coordination: coordination, logger: logger)
    }
}

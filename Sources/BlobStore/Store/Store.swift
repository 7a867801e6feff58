import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A BlobStore on disk: one root folder holding `config.json`, the LMDB index (`index/`)
/// and its journal (`index.journal`), pack files (`packs/`), liveness locks (`locks/`),
/// resumable ingest state (`ingest/`) and scratch space (`tmp/`).
///
/// Thread-safe: any number of ingests and reads may run at once, in this process and in
/// others on the same root. The index serialises writers (LMDB's single writer); pack files
/// are per process.
public final class Store: @unchecked Sendable {
    public let root: String
    public let config: StoreConfig
    public var logger: Logger
    package let index: any IndexEngine
    package let packs: any PackBackend
    let chunker: Chunker
    let compressors: ContextPool<ZstdCompressor>
    let decompressors = ContextPool { ZstdDecompressor() }
    let frameDecoders = ContextPool { ZstdFrameDecoder() }
    let scratchBuffers = ContextPool { ScratchBuffer() }
    /// Decompressed chunks shared by readers; off until `chunkCache.setCapacity` is called.
    public let chunkCache = ChunkCache()
    /// Liveness of lease and mount holders, and the one-collector lock (see `StoreCoordination`).
    package let coordination: any StoreCoordination

    /// The index databases. `garbage` is the queue of objects whose count reached zero.
    static let databases = ["meta", "chunks", "blobs", "packs", "leases", "garbage", "ingests",
                            "edges", "images", "containers", "volumes",
                            "repoblobs", "repomanifests", "referrers", "layers", "mounts", "holds", "claims"]
    package static var databaseNames: [String] { databases }
    /// Where an index that is the store's only home (cluster mode) keeps the store's config;
    /// the embedded store keeps it in `config.json` instead.
    package static let storeConfigMetaKey = Array("storeConfig".utf8)
    /// The index may grow to this size; the map is sparse, so this costs address space only.
    static let indexMapSize = 1 << 40

    private init(root: String, config: StoreConfig, logger: Logger) throws {
        self.root = root
        self.config = config
        self.logger = logger
        index = try LMDBEnvironment.shared(path: root + "/index", mapSize: Store.indexMapSize, databaseNames: Store.databases)
        packs = LocalPackBackend(directory: root + "/packs", sizeLimit: config.packSizeLimit)
        coordination = LocalCoordination(root: root)
        chunker = Chunker(parameters: config.chunking)
        let level = Int32(config.compressionLevel)
        compressors = ContextPool { ZstdCompressor(level: level) }
    }

    private init(root: String, config: StoreConfig, logger: Logger, index: any IndexEngine, packs: any PackBackend,
                 coordination: any StoreCoordination) {
        self.root = root
        self.config = config
        self.logger = logger
        self.index = index
        self.packs = packs
        self.coordination = coordination
        chunker = Chunker(parameters: config.chunking)
        let level = Int32(config.compressionLevel)
        compressors = ContextPool { ZstdCompressor(level: level) }
    }

    /// A store over an index and packs its caller chose: cluster mode's PostgreSQL index and
    /// shared packs (the `ClusterStore` target). `root` is this process's own folder:
    /// resumable ingests, liveness locks and scratch space. `config` is the store's, kept
    /// with its index so that every node chunks and compresses alike.
    package static func assemble(root: String, config: StoreConfig, index: any IndexEngine, packs: any PackBackend,
                                 coordination: any StoreCoordination, logger: Logger = Logger(label: "blobstore")) throws -> Store {
        try config.validate()
        for dir in [root, root + "/ingest", root + "/tmp"] {
            if mkdir(dir, 0o755) != 0 && errno != EEXIST {
                throw BlobStoreError.io("create directory", path: dir)
            }
        }
        return Store(root: root, config: config, logger: logger, index: index, packs: packs, coordination: coordination)
    }

    /// Creates a new, empty store at `root` (the folder may exist but must not hold a store).
    public static func create(at root: String, config: StoreConfig = StoreConfig(), logger: Logger = Logger(label: "blobstore")) throws -> Store {
        try config.validate()
        let configPath = root + "/config.json"
        if access(configPath, F_OK) == 0 {
            throw BlobStoreError(.alreadyExists, "a store already exists at \(root)")
        }
        for dir in [root, root + "/index", root + "/packs", root + "/ingest", root + "/tmp"] {
            if mkdir(dir, 0o755) != 0 && errno != EEXIST {
                throw BlobStoreError.io("create directory", path: dir)
            }
        }
        let data: Data
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            data = try encoder.encode(config)
        } catch {
            throw BlobStoreError(.invalidArgument, "encode config: \(error)")
        }
        // Written to a temporary name and renamed: a store either has a whole config or none.
        let tmp = root + "/tmp/config.json.new"
        let handle = try FileHandle(path: tmp, flags: O_WRONLY | O_CREAT | O_TRUNC)
        try data.withUnsafeBytes { (raw) in try handle.write(raw, at: 0) }
        try handle.sync()
        if rename(tmp, configPath) != 0 { throw BlobStoreError.io("rename", path: configPath) }
        try FileHandle.syncDirectory(root)
        let store = try Store(root: root, config: config, logger: logger)
        try store.startJournal()
        return store
    }

    /// Opens an existing store.
    public static func open(at root: String, logger: Logger = Logger(label: "blobstore")) throws -> Store {
        let configPath = root + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            if access(root, F_OK) != 0 || access(configPath, F_OK) != 0 {
                throw BlobStoreError(.notFound, "no store at \(root) (run `blobctl init` first)")
            }
            throw BlobStoreError.io("read", path: configPath)
        }
        let config: StoreConfig
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            config = try decoder.decode(StoreConfig.self, from: data)
        } catch {
            throw BlobStoreError(.corrupt, "\(configPath) is not a valid store config: \(error)")
        }
        guard config.formatVersion <= StoreConfig.currentFormatVersion else {
            throw BlobStoreError(.unsupportedFormat, "store format \(config.formatVersion) is newer than this blobctl supports (\(StoreConfig.currentFormatVersion))")
        }
        try config.validate()
        if access(root + "/index", F_OK) != 0 {
            throw BlobStoreError(.corrupt, "the index of the store at \(root) is missing (\(root)/index); rebuild it from the packs with `blobctl fsck --rebuild-index`")
        }
        let store = try Store(root: root, config: config, logger: logger)
        try store.startJournal()
        return store
    }

    /// Opens the store at `root`, creating it with `config` when there is none.
    public static func openOrCreate(at root: String, config: StoreConfig = StoreConfig(), logger: Logger = Logger(label: "blobstore")) throws -> Store {
        do {
            return try open(at: root, logger: logger)
        } catch let error as BlobStoreError where error.code == .notFound {
            do {
                return try create(at: root, config: config, logger: logger)
            } catch let error as BlobStoreError where error.code == .alreadyExists {
                return try open(at: root, logger: logger) // another process created it first
            }
        }
    }

    /// Seals this process's open pack. Optional: a pack left open is adopted by a later writer.
    public func close() throws {
        try packs.seal()
    }
}

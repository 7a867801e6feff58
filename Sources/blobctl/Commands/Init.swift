import ArgumentParser
import BlobStore
import ClusterStore

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a new store.",
        discussion: """
        With --cluster CONFIG, creates a cluster's store instead: its index in PostgreSQL and its \
        packs where the config file says (see "Scaling out" in the README). Every node then \
        runs commands with --store CONFIG, e.g. `blobctl serve --store /etc/blobstore/cluster.json`.
        """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "Minimum chunk size in bytes.")
    var minChunk = ChunkingParameters.default.minSize
    @Option(help: "Average chunk size in bytes (a power of two).")
    var avgChunk = ChunkingParameters.default.averageSize
    @Option(help: "Maximum chunk size in bytes.")
    var maxChunk = ChunkingParameters.default.maxSize
    @Option(parsing: .unconditional, help: "zstd level for new chunks, 1-19 or zstd's fast levels -1 to -7; 0 stores chunks uncompressed.")
    var level = StoreConfig.defaultLevel
    @Option(help: "zstd level `blobctl settle` rewrites cold chunks at, 1-19.")
    var settledLevel = StoreConfig.defaultSettledLevel
    @Option(help: "Seal a pack file and start a new one past this many bytes.")
    var packSize = StoreConfig.defaultPackSizeLimit
    @Option(help: ArgumentHelp("Create a cluster's store from this cluster config file.", valueName: "config"))
    var cluster: String?

    func run() throws {
        let config = StoreConfig(
            chunking: ChunkingParameters(minSize: minChunk, averageSize: avgChunk, maxSize: maxChunk),
            compressionLevel: level, settledLevel: settledLevel, packSizeLimit: packSize)
        let created: Store
        if let cluster {
            created = try ClusterStore.create(configPath: cluster, storeConfig: config, logger: store.logger())
        } else {
            created = try Store.create(at: store.root, config: config, logger: store.logger())
        }
        if output.json {
            try Terminal.printJSON(["root": .string(created.root), "config": JSONValue(created.config)])
        } else {
            let place = cluster.map { "a cluster's store for \($0), this node's folder \(created.root)" } ?? "store at \(created.root)"
            print("created \(place) (chunks \(minChunk)/\(avgChunk)/\(maxChunk) bytes, zstd level \(level), settled at \(settledLevel))")
        }
    }
}

/// Just enough of a JSON value to nest an Encodable beside plain strings.
enum JSONValue: Encodable {
    case string(String)
    case encodable(any Encodable)

    init(_ value: any Encodable) { self = .encodable(value) }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .encodable(let e):
            try e.encode(to: encoder)
        }
    }
}

import ArgumentParser
import BlobStore
import ClusterStore
import Foundation
import Logging

/// `--store PATH`, shared by every command.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The store's root folder, or a cluster config file (cluster mode, see `init --cluster`).",
        discussion: "Default: $BLOBSTORE_ROOT, else /var/lib/blobstore as root, else $XDG_DATA_HOME/blobstore.",
        valueName: "path"))
    var store: String?

    @Flag(name: .long, help: "Log debug details to stderr.")
    var verbose = false

    /// The store's folder, made absolute (a background mount runs from `/`).
    var root: String {
        let path = resolvedRoot
        return path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    private var resolvedRoot: String {
        if let store { return store }
        let env = ProcessInfo.processInfo.environment
        if let root = env["BLOBSTORE_ROOT"], !root.isEmpty { return root }
        if getuid() == 0 { return "/var/lib/blobstore" }
        let data = env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.local/share")
        return data + "/blobstore"
    }

    func logger() -> Logger {
        var logger = Logger(label: "blobctl") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = verbose ? .debug : .warning
        return logger
    }

    func open() throws -> Store {
        if ClusterStore.isClusterConfig(root) { return try ClusterStore.open(configPath: root, logger: logger()) }
        return try Store.open(at: root, logger: logger())
    }

    /// Opens the store, creating one with default settings on first use (a cluster's
    /// store is only ever created by `init --cluster`).
    func openOrCreate() throws -> Store {
        if ClusterStore.isClusterConfig(root) { return try ClusterStore.open(configPath: root, logger: logger()) }
        return try Store.openOrCreate(at: root, logger: logger())
    }
}

/// `--json`, on every command that prints data.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON for scripts instead of text.")
    var json = false
}

func parseDigest(_ text: String) throws -> Digest {
    guard let digest = Digest(parsing: text) else {
        throw UsageError("not a digest: \(text) (expected sha256:<64 lowercase hex digits>)")
    }
    return digest
}

import ArgumentParser
import BlobRegistry
import BlobStore
import Foundation
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the store as an OCI registry (distribution spec v1.1) that docker, podman, skopeo, containerd and oras use.",
        discussion: "Stops gracefully on SIGTERM or SIGINT. See the README for the config file.")

    @OptionGroup var store: StoreOptions

    @Option(help: "Address to listen on, host:port.") var addr: String?
    @Option(help: "JSON config file (address, tls, auth, limits, gc, readOnly, logLevel).") var config: String?
    @Flag(help: "Refuse pushes and deletes.") var readOnly = false
    @Option(help: "TLS certificate (PEM).") var tlsCert: String?
    @Option(help: "TLS private key (PEM).") var tlsKey: String?
    @Option(help: "htpasswd file with bcrypt entries for basic auth.") var htpasswd: String?
    @Option(help: "Seconds between background garbage collections (0: off).") var gcInterval: Double?
    @Option(help: "Settle pushed packs at the strong level after this many idle seconds (0: off).") var settleIdle: Double?

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together: give both to serve HTTPS, neither for plain HTTP")
        }
    }

    func run() async throws {
        var configuration = try config.map(RegistryConfiguration.load) ?? RegistryConfiguration()
        if let addr { configuration.address = addr }
        if readOnly { configuration.readOnly = true }
        if let tlsCert, let tlsKey { configuration.tls = .init(certificate: tlsCert, key: tlsKey) }
        if let htpasswd {
            var auth = configuration.auth ?? .init(htpasswd: nil, tokens: nil, realm: nil)
            auth.htpasswd = htpasswd // the flag overrides the file's htpasswd, and keeps its other settings
            configuration.auth = auth
        }
        var gc = configuration.gc ?? .init(intervalSeconds: nil, uploadLeaseSeconds: nil)
        if let gcInterval { gc.intervalSeconds = gcInterval }
        if let settleIdle { gc.settleIdleSeconds = settleIdle }
        configuration.gc = gc
        var logger = Logger(label: "blobstore.registry") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = configuration.logLevel.flatMap(Logger.Level.init(rawValue:)) ?? (store.verbose ? .debug : .info)
        let s = try store.openOrCreate()
        let server = RegistryServer(store: s, configuration: configuration, logger: logger)
        let announce = logger
        let address = configuration.address ?? "127.0.0.1:5000"
        try await server.run { port in
            announce.info("serving registry", metadata: ["address": "\(address)", "port": "\(port)", "store": "\(s.root)"])
        }
    }
}

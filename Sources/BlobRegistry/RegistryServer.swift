import BlobStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Metrics
import NIOCore
import NIOSSL
import Prometheus
import ServiceLifecycle

/// The `blobctl serve` application: the registry routes, request logs, Prometheus metrics
/// at `/metrics`, optional auth and TLS, and background GC — one Hummingbird application
/// whose service group shuts down gracefully on SIGTERM/SIGINT (requests in flight finish,
/// then the store's open pack is sealed).
public struct RegistryServer {
    public let store: Store
    public let configuration: RegistryConfiguration
    public var logger: Logger

    /// One metrics registry per process: swift-metrics can be bootstrapped once.
    nonisolated(unsafe) static var prometheus: PrometheusCollectorRegistry?
    static let bootstrapLock = NSLock()

    public init(store: Store, configuration: RegistryConfiguration, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    static func metricsRegistry() -> PrometheusCollectorRegistry {
        bootstrapLock.lock()
        defer { bootstrapLock.unlock() }
        if let prometheus { return prometheus }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        prometheus = registry
        return registry
    }

    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let metrics = RegistryServer.metricsRegistry()
        store.chunkCache.setCapacity(configuration.chunkCacheBytes)
        Blocking.configure(threads: configuration.blockingThreads)
        let registry = Registry(store: store, configuration: configuration)
        let router = Router(context: RegistryRequestContext.self)
        router.add(middleware: LogRequestsMiddleware(.info))
        router.add(middleware: MetricsMiddleware())
        router.get("/metrics") { _, _ -> Response in
            var text: [UInt8] = []
            metrics.emit(into: &text)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: text)))
        }
        // Before auth, so its 401 challenges carry the API version header too.
        router.add(middleware: DistributionHeaderMiddleware())
        // Before auth: a flood of bad credentials is shed like any other flood.
        let requests = AdmissionGate(limit: configuration.maxConcurrentRequests)
        router.add(middleware: LoadSheddingMiddleware(gate: requests))
        if let auth = configuration.auth, auth.htpasswd != nil || !(auth.tokens ?? []).isEmpty {
            router.add(middleware: try RegistryAuthenticator(
                configuration: auth, cacheSeconds: configuration.credentialCacheSeconds,
                failuresPerMinute: configuration.authFailuresPerMinute))
        }
        let handler: @Sendable (Request, RegistryRequestContext) async throws -> Response = { request, context in
            try await registry.handle(request, context: context)
        }
        for method in [HTTPRequest.Method.get, .head, .post, .put, .patch, .delete] {
            router.on("/v2", method: method, use: handler)
            router.on("/v2/**", method: method, use: handler)
        }

        let (host, port) = try configuration.hostAndPort()
        let connections = ConnectionTable(limit: configuration.maxConnections, perClient: configuration.maxConnectionsPerClient)
        let headTimeout = TimeAmount.nanoseconds(Int64(configuration.requestHeadTimeoutSeconds * 1e9))
        let http = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ConnectionLimiter(table: connections, headTimeout: headTimeout)],
            idleTimeout: .nanoseconds(Int64(configuration.idleTimeoutSeconds * 1e9)))
        let server: HTTPServerBuilder
        if let tls = configuration.tls {
            let certificates = try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tls.key, format: .pem)
            var tlsConfiguration = TLSConfiguration.makeServerConfiguration(certificateChain: certificates, privateKey: .privateKey(key))
            tlsConfiguration.minimumTLSVersion = .tlsv12 // TLS 1.0 and 1.1 are deprecated (RFC 8996)
            server = try .tls(.http1(configuration: http), tlsConfiguration: tlsConfiguration)
        } else {
            server = .http1(configuration: http)
        }
        let gc = GarbageCollectionService(store: store, interval: configuration.gcInterval, logger: logger)
        let settling = SettlingService(store: store, idleSeconds: configuration.settleIdleSeconds, requests: requests, logger: logger)
        let store = self.store
        let logger = self.logger
        let app = Application(
            router: router, server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: "blobstore"),
            services: [gc, settling],
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        try? store.close()
        logger.info("registry stopped; store closed")
    }
}

/// Every /v2/ response says which API it speaks, as clients check.
struct DistributionHeaderMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            response.headers[.dockerDistributionAPIVersion] = "registry/2.0"
            return response
        } catch let error as RegistryError {
            var e = error
            e.headers[.dockerDistributionAPIVersion] = "registry/2.0"
            throw e
        }
    }
}

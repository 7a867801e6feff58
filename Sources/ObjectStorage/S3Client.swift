import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// A synchronous S3 client for one bucket.
///
/// The store calls it from its own blocking threads, never from a NIO event loop: each
/// call starts an AsyncHTTPClient request and blocks on its future with `wait()`, which is
/// safe from any thread that is not an event loop (and traps on one). Thread-safe; one
/// client is meant to be shared by all of a store's threads so connections are reused.
public final class S3Client: Sendable {
    public let configuration: S3Configuration
    let signer: SigV4Signer
    let http: HTTPClient
    let logger: Logger
    let endpoint: Endpoint

    public init(configuration: S3Configuration, logger: Logger = Logger(label: "blobstore.s3")) throws {
        guard configuration.partSize >= S3Configuration.minimumPartSize,
              configuration.multipartThreshold >= 1, configuration.uploadConcurrency >= 1,
              configuration.maxAttempts >= 1 else {
            throw S3Error(kind: .invalidRequest, operation: "configure",
                          message: "partSize must be at least 5 MiB; threshold, concurrency and attempts at least 1")
        }
        self.configuration = configuration
        self.endpoint = try Endpoint(configuration)
        self.signer = SigV4Signer(accessKey: configuration.accessKey, secretKey: configuration.secretKey,
                                  region: configuration.region)
        self.logger = logger
        let timeout = TimeAmount.milliseconds(Int64(configuration.requestTimeout * 1000))
        var httpConfig = HTTPClient.Configuration()
        httpConfig.timeout = .init(connect: .milliseconds(Int64(configuration.connectTimeout * 1000)), read: timeout)
        httpConfig.timeout.write = timeout
        // radosgw answers errors on the same URL; a redirect would mean a misconfigured
        // endpoint, and following it would send a signature made for another host.
        httpConfig.redirectConfiguration = .disallow
        // Enough connections for concurrent parts from several store threads.
        httpConfig.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfig,
                               backgroundActivityLogger: logger)
    }

    /// Closes the connections. Call once, when no request is running; required before the
    /// client is released.
    public func shutdown() throws {
        try http.syncShutdown()
    }

    // MARK: - One request

    /// A request against the bucket (key nil) or one object.
    struct Call {
        var method: HTTPMethod
        var key: String?
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var body: ByteBuffer?
        /// Hex SHA-256 of `body` when the caller already has it.
        var payloadHash: String?
        /// Whether a retry after a retryable failure is harmless.
        var idempotent = true

        var operation: String { "\(method.rawValue) \(key.map { "key \($0)" } ?? "bucket")" }
    }

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        /// The body, unless it went to a caller's buffer (then `written` counts it).
        var body: [UInt8]
        var written: Int
    }

    /// Sends `call`, retrying retryable failures of idempotent calls, and returns a 2xx
    /// reply; any other status throws an S3Error carrying the server's code and message.
    /// With `sink`, a 2xx body is written there instead of being collected.
    func perform(_ call: Call, sink: UnsafeMutableRawBufferPointer? = nil) throws -> Reply {
        // Blocking an event loop on its own future would hang it; say so instead.
        for loop in http.eventLoopGroup.makeIterator() where loop.inEventLoop {
            throw S3Error(kind: .invalidRequest, operation: call.operation,
                          message: "the synchronous S3 API was called on an event loop thread")
        }
        let attempts = call.idempotent ? configuration.maxAttempts : 1
        let payloadHash = call.payloadHash
            ?? call.body.map { $0.withUnsafeReadableBytes { Digests.hex(Digests.sha256($0)) } }
            ?? Digests.emptySHA256Hex
        var attempt = 1
        while true {
            do {
                return try performOnce(call, payloadHash: payloadHash, sink: sink)
            } catch let error as S3Error where error.isRetryable && attempt < attempts {
                // 0.2 s, then 0.8 s, with jitter so that many threads do not retry in step.
                let delay = 0.2 * pow(4, Double(attempt - 1)) * Double.random(in: 0.75...1.25)
                logger.warning("S3 request failed, retrying", metadata: [
                    "operation": "\(call.operation)", "attempt": "\(attempt)", "error": "\(error)",
                    "delay_ms": "\(Int(delay * 1000))",
                ])
                Thread.sleep(forTimeInterval: delay)
                attempt += 1
            }
        }
    }

    private func performOnce(_ call: Call, payloadHash: String, sink: UnsafeMutableRawBufferPointer?) throws -> Reply {
        let target = endpoint.target(bucket: configuration.bucket, key: call.key, query: call.query)
        var toSign = call.headers
        toSign.append(("host", target.hostHeader))
        let signed = signer.sign(.init(method: call.method.rawValue, encodedPath: target.encodedPath,
                                       query: call.query, headers: toSign, payloadHash: payloadHash),
                                 date: Date())
        var headers = HTTPHeaders(toSign.map { ($0.name, $0.value) })
        headers.add(contentsOf: signed.headers.map { ($0.name, $0.value) })
        let operation = call.operation
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(url: target.url, method: call.method, headers: headers,
                                             body: call.body.map { .byteBuffer($0) })
        } catch {
            throw S3Error(kind: .invalidRequest, operation: operation, message: "bad URL \(target.url): \(error)")
        }
        let collector = ReplyCollector(sink: sink, expectBody: call.method != .HEAD)
        let started = DispatchTime.now().uptimeNanoseconds
        let reply: Reply
        do {
            reply = try http.execute(request: request, delegate: collector, logger: logger).wait()
        } catch let error as S3Error {
            throw error
        } catch let error as HTTPClientError where error == .alreadyShutdown || error == .invalidURL {
            throw S3Error(kind: .invalidRequest, operation: operation, message: String(describing: error))
        } catch {
            throw S3Error.transport(operation: operation, error)
        }
        logger.debug("S3 request", metadata: [
            "operation": "\(operation)", "status": "\(reply.status)",
            "bytes": "\(reply.written + reply.body.count + (call.body?.readableBytes ?? 0))",
            "ms": "\((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000)",
        ])
        guard (200..<300).contains(reply.status) else {
            var buffer = ByteBuffer()
            buffer.writeBytes(reply.body)
            throw S3Error.service(operation: operation, status: reply.status, body: buffer,
                                  headers: reply.headers.map { ($0.name, $0.value) })
        }
        return reply
    }

    /// Collects one response. AsyncHTTPClient calls a delegate's methods one after another
    /// on the request's event loop, and the caller reads the result only after the task's
    /// future has completed, hence @unchecked Sendable for the mutable state.
    final class ReplyCollector: HTTPClientResponseDelegate, @unchecked Sendable {
        typealias Response = Reply

        private let sink: UnsafeMutableRawBufferPointer?
        private let expectBody: Bool
        private var status = 0
        private var headers = HTTPHeaders()
        private var body: [UInt8] = []
        private var written = 0

        init(sink: UnsafeMutableRawBufferPointer?, expectBody: Bool) {
            self.sink = sink
            self.expectBody = expectBody
        }

        private var toSink: Bool { sink != nil && (200..<300).contains(status) }

        func didReceiveHead(task: HTTPClient.Task<Reply>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
            status = Int(head.status.code)
            headers = head.headers
            if expectBody, !toSink, let length = head.headers.first(name: "content-length").flatMap(Int.init) {
                body.reserveCapacity(length)
            }
            return task.eventLoop.makeSucceededVoidFuture()
        }

        func didReceiveBodyPart(task: HTTPClient.Task<Reply>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
            if toSink, let sink {
                guard buffer.readableBytes <= sink.count - written else {
                    return task.eventLoop.makeFailedFuture(S3Error(
                        kind: .invalidRequest, operation: "GET",
                        message: "the object's bytes do not fit the \(sink.count)-byte buffer"))
                }
                buffer.withUnsafeReadableBytes { bytes in
                    UnsafeMutableRawBufferPointer(rebasing: sink[written..<(written + bytes.count)]).copyMemory(from: bytes)
                }
                written += buffer.readableBytes
            } else {
                body.append(contentsOf: buffer.readableBytesView)
            }
            return task.eventLoop.makeSucceededVoidFuture()
        }

        func didFinishRequest(task: HTTPClient.Task<Reply>) throws -> Reply {
            Reply(status: status, headers: headers, body: body, written: written)
        }
    }
}

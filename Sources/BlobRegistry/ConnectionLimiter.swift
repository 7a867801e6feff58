import HTTPTypes
import Metrics
import NIOCore
import NIOHTTPTypes

/// Caps open connections. A connection beyond the cap gets one answer, 503 with
/// `Retry-After` (not a silent reset, which clients retry at once), and is closed.
/// One instance per connection, in the pipeline after HTTP decoding.
final class ConnectionLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private let gate: AdmissionGate
    private var admitted = false
    private var answered = false

    init(gate: AdmissionGate) { self.gate = gate }

    func handlerAdded(context: ChannelHandlerContext) {
        admitted = gate.tryEnter()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if admitted { gate.leave() }
        admitted = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if admitted { context.fireChannelRead(data); return }
        guard case .head = unwrapInboundIn(data), !answered else { return }
        answered = true
        Counter(label: "blobstore_registry_shed_total", dimensions: [("reason", "connections")]).increment()
        let body = #"{"errors":[{"code":"UNAVAILABLE","message":"too many connections; retry shortly"}]}"#
        let head = HTTPResponse(status: .serviceUnavailable, headerFields: [
            .retryAfter: "1", .connection: "close", .contentType: "application/json",
            .contentLength: String(body.utf8.count), .dockerDistributionAPIVersion: "registry/2.0",
        ])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(string: body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

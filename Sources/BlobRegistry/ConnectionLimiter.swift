import Foundation
import Metrics
import NIOCore
import NIOHTTPTypes

/// Open connections, counted in total and per client address, so that one client holding
/// sockets open cannot take every place (slowloris).
final class ConnectionTable: @unchecked Sendable {
    let limit: Int
    let perClient: Int
    private let lock = NSLock()
    private var total = 0
    private var byClient: [String: Int] = [:]

    init(limit: Int, perClient: Int) {
        self.limit = max(1, limit)
        self.perClient = max(1, perClient)
    }

    func admit(_ client: String) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard total < limit, byClient[client, default: 0] < perClient else { return false }
        total += 1
        byClient[client, default: 0] += 1
        return true
    }

    func release(_ client: String) {
        lock.lock()
        defer { lock.unlock() }
        total -= 1
        let left = byClient[client, default: 1] - 1
        byClient[client] = left > 0 ? left : nil
    }
}

/// Admits a connection into the `ConnectionTable` or closes it at once: a server at its
/// cap spends nothing more on it, not even parsing a request. An admitted connection must
/// send its first request head within `headTimeout`, or it is closed (a client that
/// trickles header bytes would otherwise hold its place until the idle timeout).
/// One instance per connection, in the pipeline after HTTP decoding.
final class ConnectionLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let table: ConnectionTable
    private let headTimeout: TimeAmount
    private var client: String?
    private var headDeadline: Scheduled<Void>?

    init(table: ConnectionTable, headTimeout: TimeAmount) {
        self.table = table
        self.headTimeout = headTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress
        let name = address?.ipAddress ?? address?.pathname ?? "unknown"
        guard table.admit(name) else {
            Counter(label: "blobstore_registry_shed_total", dimensions: [("reason", "connections")]).increment()
            context.close(promise: nil)
            return
        }
        client = name
        let channel = context.channel
        headDeadline = context.eventLoop.scheduleTask(in: headTimeout) {
            Counter(label: "blobstore_registry_shed_total", dimensions: [("reason", "slow-headers")]).increment()
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headDeadline?.cancel()
        if let client { table.release(client) }
        client = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard client != nil else { return }
        if case .head = unwrapInboundIn(data), let deadline = headDeadline {
            deadline.cancel()
            headDeadline = nil
        }
        context.fireChannelRead(data)
    }
}

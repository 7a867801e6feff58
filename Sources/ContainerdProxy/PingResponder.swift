import NIOCore

/// Answers the client's HTTP/2 PINGs itself, ahead of the HTTP/2 handler, on the proxy's
/// connections.
///
/// Why: containerd's gRPC client (grpc-go) probes bandwidth with a PING after each answer it
/// receives, so a write stream (one answer per 1 MiB message) or a read of a layer (one RPC
/// per 32 KiB) sends hundreds of PINGs. swift-nio-http2 counts PINGs against a
/// denial-of-service limit (200 per 30 s) that grpc-swift-nio-transport 2.9 does not let a
/// server raise, and past it closes the connection with ENHANCE_YOUR_CALM: pulls of layers
/// over about 100 MB failed with "the connection is draining". The peer here is containerd
/// on a local socket, so its PINGs are acknowledged at once (as HTTP/2 requires) and never
/// reach the limit. Every other byte goes through unchanged, in order.
final class PingResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let prefaceLength = 24 // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    private static let pingType: UInt8 = 0x6
    private static let ackFlag: UInt8 = 0x1

    private enum State {
        /// Bytes of the client's connection preface still to pass.
        case preface(remaining: Int)
        /// Between frames: gathering the 9-byte header of the next one.
        case header
        /// Passing `remaining` bytes of a frame's payload on.
        case payload(remaining: Int)
        /// Gathering the 8 bytes of a PING to answer.
        case ping
    }

    private var state = State.preface(remaining: PingResponder.prefaceLength)
    private var pending = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        var passed = context.channel.allocator.buffer(capacity: input.readableBytes)
        while input.readableBytes > 0 {
            switch state {
            case .preface(let remaining):
                let n = min(remaining, input.readableBytes)
                var slice = input.readSlice(length: n)!
                passed.writeBuffer(&slice)
                state = remaining == n ? .header : .preface(remaining: remaining - n)
            case .header:
                var take = input.readSlice(length: min(9 - pending.readableBytes, input.readableBytes))!
                pending.writeBuffer(&take)
                guard pending.readableBytes == 9 else { continue }
                let header = pending.getBytes(at: pending.readerIndex, length: 9)!
                let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
                if header[3] == Self.pingType, header[4] & Self.ackFlag == 0, length == 8 {
                    pending.clear()
                    state = .ping
                } else {
                    passed.writeBuffer(&pending)
                    pending.clear()
                    state = length == 0 ? .header : .payload(remaining: length)
                }
            case .payload(let remaining):
                let n = min(remaining, input.readableBytes)
                var slice = input.readSlice(length: n)!
                passed.writeBuffer(&slice)
                state = remaining == n ? .header : .payload(remaining: remaining - n)
            case .ping:
                var take = input.readSlice(length: min(8 - pending.readableBytes, input.readableBytes))!
                pending.writeBuffer(&take)
                guard pending.readableBytes == 8 else { continue }
                var ack = context.channel.allocator.buffer(capacity: 17)
                ack.writeBytes([0, 0, 8, Self.pingType, Self.ackFlag, 0, 0, 0, 0])
                ack.writeBuffer(&pending)
                pending.clear()
                context.writeAndFlush(wrapOutboundOut(ack), promise: nil)
                state = .header
            }
        }
        if passed.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(passed)) }
    }
}

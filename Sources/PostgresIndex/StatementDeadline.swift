import NIOCore

/// How long the index waits for PostgreSQL to answer one statement. Index statements take
/// milliseconds; one with no answer after this long is on a connection that died without
/// saying so (seen when the server crashes mid-query), and waiting on would hang the
/// request that sent it, and every writer behind its lock, for good.
enum StatementDeadline {
    static let statement: Int64 = 15
    /// Waiting for the writer lock: behind a large collection's transaction.
    static let writerLock: Int64 = 60
}

/// A statement that got no answer in time; its connection is closed, never reused.
struct UnansweredStatement: Error, CustomStringConvertible {
    let seconds: Int64
    var description: String { "no answer from the index database within \(seconds) s" }
}

extension EventLoopFuture {
    /// `wait()`, failing with `UnansweredStatement` after `seconds`.
    func wait(seconds: Int64) throws -> Value {
        let promise = eventLoop.makePromise(of: Value.self)
        cascade(to: promise)
        let timer = eventLoop.scheduleTask(in: .seconds(seconds)) { promise.fail(UnansweredStatement(seconds: seconds)) }
        defer { timer.cancel() }
        return try promise.futureResult.wait()
    }
}

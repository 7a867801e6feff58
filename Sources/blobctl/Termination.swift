import Dispatch
import Foundation

/// Waiting for SIGTERM or SIGINT in the servers that are not Hummingbird applications.
enum Termination {
    /// Returns on SIGTERM or SIGINT.
    static func wait() async {
        let signals = [SIGTERM, SIGINT]
        for s in signals { signal(s, SIG_IGN) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let queue = DispatchQueue(label: "blobstore.signals")
            let once = OnceFlag()
            let sources = signals.map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
            for source in sources {
                source.setEventHandler { if once.set() { continuation.resume() } }
                source.resume()
            }
            withExtendedLifetime(sources) {}
            SignalSources.keep(sources)
        }
    }
}

/// Keeps the signal sources alive for the life of the process.
enum SignalSources {
    nonisolated(unsafe) private static var kept: [any DispatchSourceSignal] = []
    static func keep(_ sources: [any DispatchSourceSignal]) { kept += sources }
}

final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    func set() -> Bool { lock.lock(); defer { lock.unlock() }; if done { return false }; done = true; return true }
}

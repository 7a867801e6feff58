import Foundation

/// Counts failed authentications per client address over a sliding minute. A client past
/// the limit is refused without checking anything (no bcrypt to burn, no guesses to try)
/// until its oldest failure in the window is a minute old.
final class AuthFailureLimiter: @unchecked Sendable {
    private let perMinute: Int
    private let lock = NSLock()
    private var failures: [String: [Double]] = [:]
    private let window = 60.0

    init(perMinute: Int) { self.perMinute = perMinute }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Seconds until `client` may try again, or nil if it may now.
    func blocked(_ client: String) -> Int? {
        guard perMinute > 0 else { return nil }
        let now = Self.now()
        lock.lock()
        defer { lock.unlock() }
        guard var times = failures[client] else { return nil }
        times.removeAll { $0 <= now - window }
        failures[client] = times.isEmpty ? nil : times
        guard times.count >= perMinute, let oldest = times.first else { return nil }
        return Int((oldest + window - now).rounded(.up))
    }

    func recordFailure(_ client: String) {
        guard perMinute > 0 else { return }
        let now = Self.now()
        lock.lock()
        defer { lock.unlock() }
        // Forget clients whose failures are all old, so the table cannot grow without bound.
        if failures.count > 10_000 { failures = failures.filter { ($0.value.last ?? 0) > now - window } }
        var times = failures[client, default: []]
        times.removeAll { $0 <= now - window }
        times.append(now)
        if times.count > perMinute { times.removeFirst(times.count - perMinute) }
        failures[client] = times
    }
}

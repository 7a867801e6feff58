/// Wall time on the monotonic clock (a wall-clock step mid-run must not skew a figure).
struct Stopwatch {
    private let start = ContinuousClock.now

    var milliseconds: Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    /// Runs `body` and returns its result and how long it took.
    static func time<R>(_ body: () throws -> R) rethrows -> (R, Double) {
        let w = Stopwatch()
        let r = try body()
        return (r, w.milliseconds)
    }
}

extension Array where Element == Double {
    /// The middle value (mean of the two middle ones for an even count); 0 when empty.
    var median: Double {
        guard !isEmpty else { return 0 }
        let s = sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The kernel's idle priority (SCHED_IDLE): a thread that gets the CPU only when nothing
/// else wants it, so background work (settling) never takes time from clients. Threads a
/// thread creates inherit its policy; an unprivileged thread cannot leave it again.
public enum IdlePriority {
    /// Linux's SCHED_IDLE, which Glibc's Swift module does not export.
    private static let schedIdle: Int32 = 5

    /// Moves the calling thread to idle priority; false if the kernel refused.
    @discardableResult
    public static func enterOnCallingThread() -> Bool {
        var parameters = sched_param()
        parameters.sched_priority = 0
        return pthread_setschedparam(pthread_self(), schedIdle, &parameters) == 0
    }

    /// Runs `body` on a new thread at idle priority (a fresh thread each time, so no
    /// pooled thread is ever left there).
    public static func run<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                enterOnCallingThread() // best effort
                continuation.resume(with: Result { try body() })
            }
            thread.name = name
            thread.start()
        }
    }
}

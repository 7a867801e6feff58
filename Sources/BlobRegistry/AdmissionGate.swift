import Foundation

/// A counted limit on work in progress: requests, connections or body writes. `tryEnter`
/// answers at once; `enter(waitingUpTo:)` queues for a free place, first come first served,
/// and gives up after the wait, so a server under load answers "busy" instead of piling up
/// memory.
final class AdmissionGate: @unchecked Sendable {
    let limit: Int
    private let lock = NSLock()
    private var inside = 0
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<Bool, Never>, timer: Task<Void, Error>)] = []
    private var nextWaiter: UInt64 = 0
    /// When a place was last taken or given back: how long the gate has been empty.
    private var lastChange = ContinuousClock.now

    init(limit: Int) { self.limit = max(1, limit) }

    func tryEnter() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard inside < limit, waiters.isEmpty else { return false }
        inside += 1
        lastChange = .now
        return true
    }

    /// True when nobody has been inside for `seconds`: the clients are quiet.
    func isEmpty(for seconds: Double) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return inside == 0 && waiters.isEmpty && ContinuousClock.now - lastChange >= .milliseconds(Int64(seconds * 1000))
    }

    /// Enters now or when a place frees within `seconds`; false if none did.
    func enter(waitingUpTo seconds: Double) async -> Bool {
        if tryEnter() { return true }
        guard seconds > 0 else { return false }
        return await withCheckedContinuation { continuation in
            lock.lock()
            defer { lock.unlock() }
            if inside < limit && waiters.isEmpty {
                inside += 1
                lastChange = .now
                continuation.resume(returning: true)
                return
            }
            let id = nextWaiter
            nextWaiter += 1
            // Queued before the timer starts, so the timer always finds it (or finds it served).
            let timer = Task { [weak self] in
                try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                self?.giveUp(id)
            }
            waiters.append((id, continuation, timer))
        }
    }

    /// Leaves; the place goes to the longest waiter, if any.
    func leave() {
        lock.lock()
        if !waiters.isEmpty {
            let next = waiters.removeFirst()
            lock.unlock()
            next.timer.cancel()
            next.continuation.resume(returning: true) // the place passes on: `inside` is unchanged
            return
        }
        inside -= 1
        lastChange = .now
        lock.unlock()
    }

    private func giveUp(_ id: UInt64) {
        lock.lock()
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { lock.unlock(); return }
        let waiter = waiters.remove(at: index)
        lock.unlock()
        waiter.continuation.resume(returning: false)
    }
}

/// A place held in an `AdmissionGate`, left when the last reference goes: a response body
/// that is never written (the client went away) still gives its place back.
final class AdmissionTicket: Sendable {
    private let gate: AdmissionGate
    init(_ gate: AdmissionGate) { self.gate = gate }
    deinit { gate.leave() }
}

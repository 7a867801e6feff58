import Foundation

/// A temporary directory for one benchmark store, removed when the run ends. The parent is
/// `--scratch`, else /work/tmp-bench when /work exists (the VM's big disk), else $TMPDIR.
struct Scratch {
    let path: String

    static func defaultParent() -> String {
        if let env = ProcessInfo.processInfo.environment["BENCH_TMPDIR"], !env.isEmpty { return env }
        if FileManager.default.fileExists(atPath: "/work") { return "/work/tmp-bench" }
        return ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    }

    init(parent: String, label: String) throws {
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        path = parent + "/blobbench-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

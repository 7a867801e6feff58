import Foundation
import ObjectStorage
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A real single-node Ceph (mon, one memstore OSD, radosgw) for one test class, started
/// with the shared services script in a folder of its own on free ports, stopped at the
/// class's teardown. CI installs the packages (.ci/install-test-deps.sh); without them the
/// tests fail, saying what to install, rather than skip.
final class CephCluster: @unchecked Sendable {
    static let installCommand =
        "apt-get install -y --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl"
    static let accessKey = "CIACCESSKEY"
    static let secretKey = "CISECRETKEY"
    /// radosgw's zonegroup, which SigV4 signs as the region.
    static let region = "default"

    let root: String
    let directory: String
    let rgwPort: Int
    var endpoint: String { "http://127.0.0.1:\(rgwPort)" }
    /// How long the script took to bring the cluster up, in seconds.
    let startSeconds: Double

    /// The script: $BLOBSTORE_CEPH_SCRIPT, else shared/ beside the package, else the
    /// workplace's copy.
    static func script() throws -> String {
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["BLOBSTORE_CEPH_SCRIPT"], !env.isEmpty { candidates.append(env) }
        candidates.append(URL(fileURLWithPath: packageRoot + "/../shared/services/start-ceph.sh").standardized.path)
        candidates.append("/work/shared/services/start-ceph.sh")
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw RegistryTestError("start-ceph.sh not found; looked at \(candidates.joined(separator: ", ")) (set BLOBSTORE_CEPH_SCRIPT)")
        }
        return found
    }

    /// A cluster of `osds` memstore OSDs keeping `replicas` copies of each object.
    static func start(osds: Int = 1, replicas: Int = 1) throws -> CephCluster {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        let missing = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool", "uuidgen", "curl"]
            .filter { tool in !path.contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") } }
        guard missing.isEmpty else {
            throw RegistryTestError("Ceph is not installed (missing \(missing.joined(separator: ", "))): run `\(installCommand)`"
                                    + " (.ci/install-test-deps.sh does it in CI)")
        }
        return try CephCluster(script: try script(), osds: osds, replicas: replicas)
    }

    private init(script: String, osds: Int, replicas: Int) throws {
        root = "/tmp/bs-ceph-" + String(UUID().uuidString.prefix(8)).lowercased()
        directory = root + "/cluster"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        rgwPort = try freePorts(1)
        let monPort = try freePorts(2)   // msgr v1 and v2 (MON_PORT + 1)
        let started = Date()
        let log = root + "/start-ceph.log"
        let status: Int32
        do {
            // No mgr: radosgw needs only mon and OSDs, and the cluster comes up sooner.
            // The daemons would inherit the test process's other descriptors (sockets
            // among them): the wrapper closes all but 0-2 before running the script.
            let closeInherited = #"for fd in /proc/$$/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null; exec /bin/bash "$0""#
            status = try runDetaching(["/bin/bash", "-c", closeInherited, script], environment: [
                "DIR": directory, "NOSD": String(osds), "OBJSTORE": "memstore", "POOL_SIZE": String(replicas), "WITH_MGR": "0",
                "RGW_PORT": String(rgwPort), "MON_PORT": String(monPort), "WAIT_S": "90",
            ], log: log, timeout: 150)
        } catch {
            Self.stop(root: root, directory: directory)
            throw error
        }
        startSeconds = Date().timeIntervalSince(started)
        guard status == 0 else {
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let rgw = (try? String(contentsOfFile: directory + "/log/rgw.out", encoding: .utf8)) ?? ""
            Self.stop(root: root, directory: directory)
            throw RegistryTestError("start-ceph.sh exited \(status):\n\(output.suffix(3000))\n\(rgw.suffix(2000))")
        }
    }

    /// A client for `bucket` on this cluster.
    func client(bucket: String, secretKey: String = CephCluster.secretKey,
                tune: (inout S3Configuration) -> Void = { _ in }) throws -> S3Client {
        var configuration = S3Configuration(endpoint: endpoint, region: Self.region, bucket: bucket,
                                            accessKey: Self.accessKey, secretKey: secretKey, pathStyle: true)
        tune(&configuration)
        return try S3Client(configuration: configuration)
    }

    /// Kills one OSD daemon (SIGKILL), as a lost disk or machine; returns its pid.
    @discardableResult
    func killOneOSD() throws -> pid_t {
        let pids = ((try? String(contentsOfFile: "\(directory)/pids.osd", encoding: .utf8)) ?? "")
            .split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }.filter(Self.isCeph)
        guard let victim = pids.last else { throw RegistryTestError("no running OSD to kill") }
        kill(victim, SIGKILL)
        return victim
    }

    /// Stops the daemons, radosgw first and the monitor last (as the script's header
    /// says), then removes the folder. Only the PIDs the script recorded, and only while
    /// they still run a Ceph program.
    func stop() { Self.stop(root: root, directory: directory) }

    private static func stop(root: String, directory: String) {
        for kind in ["rgw", "osd", "mgr", "mon"] {
            let pids = ((try? String(contentsOfFile: "\(directory)/pids.\(kind)", encoding: .utf8)) ?? "")
                .split(whereSeparator: \.isWhitespace).compactMap { pid_t($0) }
            for pid in pids where isCeph(pid) { kill(pid, SIGTERM) }
            let deadline = Date().addingTimeInterval(10)
            while pids.contains(where: isCeph), Date() < deadline { usleep(50_000) }
            for pid in pids where isCeph(pid) { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Whether `pid` is a live (not zombie) Ceph daemon: guards against a recycled PID.
    private static func isCeph(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let name = stat[stat.index(after: stat.firstIndex(of: "(")!)..<close]
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && (name.hasPrefix("ceph-") || name == "radosgw")
    }
}

/// The first of `count` consecutive free TCP ports on 127.0.0.1.
func freePorts(_ count: Int) throws -> Int {
    func bindable(_ port: Int) -> (fd: Int32, port: Int)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
        guard ok else { close(fd); return nil }
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: bound.sin_port)))
    }
    for _ in 0..<50 {
        guard let first = bindable(0) else { continue }
        var held = [first.fd]
        defer { held.forEach { close($0) } }
        var all = true
        for next in 1..<max(count, 1) where all {
            if let extra = bindable(first.port + next) { held.append(extra.fd) } else { all = false }
        }
        if all { return first.port }
    }
    throw RegistryTestError("no \(count) consecutive free ports")
}

/// Runs a program that leaves daemons behind, waiting for the program alone. Foundation's
/// Process notices an exit through a descriptor the child inherits, and daemons started
/// in the background inherit it too, so it would wait for them; posix_spawn and waitpid
/// wait for the one PID. Output goes to `log`.
func runDetaching(_ argv: [String], environment: [String: String], log: String, timeout: TimeInterval) throws -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
    func cStrings(_ strings: [String]) -> [UnsafeMutablePointer<CChar>?] { strings.map { strdup($0) } + [nil] }
    let cArgv = cStrings(argv), cEnv = cStrings(env)
    defer { (cArgv + cEnv).forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgv, cEnv)
    guard rc == 0 else { throw RegistryTestError("posix_spawn \(argv[0]): \(String(cString: strerror(rc)))") }
    let deadline = Date().addingTimeInterval(timeout)
    var status: Int32 = 0
    while true {
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { break }
        if r < 0 && errno != EINTR { throw RegistryTestError("waitpid: \(String(cString: strerror(errno)))") }
        if Date() > deadline {
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
            throw RegistryTestError("\(argv.joined(separator: " ")) ran over \(Int(timeout)) s")
        }
        usleep(20_000)
    }
    // WIFEXITED / WEXITSTATUS, which Swift does not import.
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

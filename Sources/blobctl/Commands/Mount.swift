import ArgumentParser
import BlobFS
import BlobStore
import Foundation
import Logging

struct Mount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mount the store read-only with FUSE: blobs/sha256/<hex>, images/<name>/<tag>/ (OCI layouts), rootfs/<name>/<tag>/ (merged root file systems).",
        discussion: "Runs in the background unless --foreground; unmount with `blobctl umount MOUNTPOINT`, or SIGINT/SIGTERM in the foreground.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "An empty directory to mount on.") var mountpoint: String
    @Flag(help: "Let other users (and overlayfs run by root for them) read the mount.") var allowOther = false
    @Flag(help: "Stay in the foreground until unmounted.") var foreground = false
    @Flag(help: "libfuse debug output (implies --foreground).") var debug = false
    @Option(help: "In the background, write the mount's log here (default: discarded).") var logFile: String?

    func run() throws {
        let point = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: point, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw BlobStoreError(.notFound, "mount point \(point) is not a directory")
        }
        let s = try store.open()
        if !foreground && !debug {
            try MountDaemon.start(arguments: CommandLine.arguments, mountpoint: point, logFile: logFile)
            print("mounted \(s.root) on \(point)")
            return
        }
        var logger = store.logger()
        logger.logLevel = store.verbose || debug ? .debug : .info
        let status = try FuseMount.run(BlobFileSystem(store: s, logger: logger), mountpoint: point, allowOther: allowOther, debug: debug)
        try? s.close()
        if status != 0 { throw ExitCode(ExitStatus.failure.rawValue) }
    }
}

struct Umount: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unmount a blobctl mount.")
    @Argument(help: "The mount point.") var mountpoint: String

    func run() throws {
        let point = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
        guard MountDaemon.isMounted(point) else { throw BlobStoreError(.notFound, "\(point) is not a blobstore mount") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/fusermount3")
        p.arguments = ["-u", point]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw BlobStoreError(.io, "fusermount3 -u \(point) failed") }
        // The serving process exits once the kernel has let go of the mount.
        for _ in 0..<100 where MountDaemon.isMounted(point) { usleep(50_000) }
    }
}

/// Background mode: the same command re-run with --foreground in a new session, detached
/// from the terminal; this process waits until the mount is up (or the child fails).
enum MountDaemon {
    static func start(arguments: [String], mountpoint: String, logFile: String?) throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = Array(arguments.dropFirst()) + ["--foreground"]
        child.standardInput = FileHandle.nullDevice
        child.standardOutput = FileHandle.nullDevice
        // The log goes to a file when asked, else to a pipe read only if the mount fails.
        let errors = Pipe()
        if let logFile {
            guard FileManager.default.createFile(atPath: logFile, contents: nil), let handle = FileHandle(forWritingAtPath: logFile) else {
                throw BlobStoreError(.io, "cannot write log file \(logFile)")
            }
            child.standardError = handle
        } else {
            child.standardError = errors
        }
        try child.run()
        for _ in 0..<200 {
            if isMounted(mountpoint) { return }
            if !child.isRunning {
                let message = logFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
                    ?? String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                throw BlobStoreError(.io, "mount failed: \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            usleep(50_000)
        }
        child.terminate()
        throw BlobStoreError(.io, "mount did not come up within 10 s")
    }

    /// Whether `path` is a FUSE mount of ours (from /proc/self/mountinfo).
    static func isMounted(_ path: String) -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        return info.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 4 && fields[4] == path && line.contains("fuse.blobstore")
        }
    }
}

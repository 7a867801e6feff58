import ArgumentParser
import Foundation

/// `blobbench files`: writes the fill blobs of `gc` as plain files, so restic and borg back
/// up the same bytes the store held (same seed, same sizes, equally incompressible).
struct WriteFiles: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files",
        abstract: "Write the benchmark's fill blobs as files (for the peer tools).")

    @Option(help: "Number of files.")
    var count: Int

    @Option(help: "Directory to write them to (created; 1000 files per subdirectory).")
    var dir: String

    @Option(help: "Seed (as for `gc`).")
    var seed: UInt64 = 1

    @Option(help: "Index of the first blob (to write a set disjoint from another).")
    var first = 0

    @Option(help: "Threads writing.")
    var workers = 4

    func run() throws {
        let fm = FileManager.default
        let count = count, first = first, seed = seed, dir = dir
        for d in stride(from: 0, to: count, by: 1000) {
            try fm.createDirectory(atPath: dir + "/" + String(format: "d%04d", d / 1000), withIntermediateDirectories: true)
        }
        try Parallel.run(count: count, workers: workers, scratch: { _ in [UInt8]() }) { i, buffer in
            FillBlob.make(first + i, seed: seed, into: &buffer)
            let path = dir + String(format: "/d%04d/f%07d", i / 1000, first + i)
            guard FileManager.default.createFile(atPath: path, contents: Data(buffer)) else {
                throw ValidationError("could not write \(path)")
            }
        }
    }
}

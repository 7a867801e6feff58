import ArgumentParser
import BlobStore
import Foundation

struct Put: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Store files (or stdin) as blobs and print their digests, one per line.",
        discussion: """
            Each file is one blob, stored and committed in the order given, by one process \
            (so many small files cost one start-up, not one each). On a failure the files \
            before it stay stored and their digests are printed; the command stops there \
            with the error. The store is created with default settings if it does not exist yet.
            """)

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The files to store, or - for standard input.")
    var files: [String]

    @Option(help: "Refuse the content unless it has this digest; nothing is stored on a mismatch (one file only).")
    var expect: String?

    @Option(help: "Media type to record with the blobs.")
    var mediaType: String?

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("name at least one file, or - for standard input") }
        if expect != nil && files.count > 1 { throw ValidationError("--expect applies to one file only") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input (-) can be named once") }
    }

    func run() throws {
        let expected = try expect.map(parseDigest)
        // Open every file first: a missing one fails the command before anything is stored.
        var inputs: [(name: String, fd: Int32, size: UInt64?)] = []
        defer { for input in inputs where input.fd != 0 { close(input.fd) } }
        for file in files {
            if file == "-" { inputs.append((file, 0, nil)); continue }
            let fd = open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw BlobStoreError(.notFound, "cannot open \(file): \(String(cString: strerror(errno)))") }
            var st = stat()
            let size: UInt64? = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? UInt64(st.st_size) : nil
            inputs.append((file, fd, size))
        }
        let s = try store.openOrCreate()
        let known = inputs.allSatisfy { $0.size != nil }
        let progress = ProgressLine("put", total: known ? inputs.reduce(0) { $0 + $1.size! } : nil)
        var done: UInt64 = 0
        var results: [IngestResult] = []
        defer { progress.finish() }
        for input in inputs {
            let result: IngestResult
            do {
                result = try s.put(contentsOf: input.fd, expected: expected, mediaType: mediaType) { progress.update(done + $0) }
            } catch let error as BlobStoreError where files.count > 1 {
                progress.finish()
                printResults(results)
                throw BlobStoreError(error.code, "\(input.name): \(error.message)", errno: error.errno)
            }
            done += result.size
            results.append(result)
            if !output.json { progress.finish(); print(result.digest) }
        }
        progress.finish()
        printResults(results)
    }

    /// Text: each digest was printed as its file was stored. JSON: one object for one
    /// file, an array for several.
    private func printResults(_ results: [IngestResult]) {
        guard output.json else { return }
        if files.count == 1, let only = results.first {
            try? Terminal.printJSON(only)
        } else {
            try? Terminal.printJSON(results)
        }
    }
}

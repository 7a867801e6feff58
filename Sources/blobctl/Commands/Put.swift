import ArgumentParser
import BlobStore
import Foundation

struct Put: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Store a file (or stdin) as a blob and print its digest.",
        discussion: "The store is created with default settings if it does not exist yet.")

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The file to store, or - for standard input.")
    var file: String

    @Option(help: "Refuse the content unless it has this digest; nothing is stored on a mismatch.")
    var expect: String?

    @Option(help: "Media type to record with the blob.")
    var mediaType: String?

    func run() throws {
        let expected = try expect.map(parseDigest)
        let fd: Int32
        var total: UInt64?
        if file == "-" {
            fd = 0
        } else {
            fd = open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw BlobStoreError(.notFound, "cannot open \(file): \(String(cString: strerror(errno)))") }
            var st = stat()
            if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { total = UInt64(st.st_size) }
        }
        defer { if fd != 0 { close(fd) } }
        let s = try store.openOrCreate()
        let progress = ProgressLine("put", total: total)
        let result: IngestResult
        do {
            result = try s.put(contentsOf: fd, expected: expected, mediaType: mediaType, progress: progress.update)
            progress.finish()
        } catch {
            progress.finish()
            throw error
        }
        if output.json {
            try Terminal.printJSON(result)
        } else {
            print(result.digest)
        }
    }
}

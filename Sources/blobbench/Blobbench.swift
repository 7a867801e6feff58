import ArgumentParser

/// Benchmarks of BlobStore that need the library's API rather than blobctl's command line
/// (a process per operation would measure process start-up, not the store).
@main
struct Blobbench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blobbench",
        abstract: "BlobStore benchmarks.",
        subcommands: [GCBench.self, WriteFiles.self])
}

import BlobStore

/// blobctl's version, shown by `blobctl --version` and reported to CSI orchestrators.
enum BlobctlVersion {
    static let string = "0.12.0"

    /// `blobctl --version --json`: what a script checks before it trusts a store to this
    /// binary — its version, the formats it reads and writes, and the commit it was built from.
    struct Info: Codable {
        var version: String
        var storeFormatVersion: Int
        var packFormatVersion: Int
        var commit: String
    }

    static func printJSON() {
        try? Terminal.printJSON(Info(version: string, storeFormatVersion: StoreConfig.currentFormatVersion,
                                     packFormatVersion: Int(PackFormat.version), commit: BuildInfo.commit))
    }
}

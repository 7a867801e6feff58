/// blobctl's version, shown by `blobctl --version` and reported to CSI orchestrators.
enum BlobctlVersion {
    static let string = "0.11.0"
}

import BlobStore

/// Any bytes as a manifest or index (declared as each media type and as none) and as an
/// image reference, a digest, a repository name and a tag.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for type in [nil, MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList] {
        _ = try? Manifest(parsing: bytes, declaredType: type)
    }
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? ImageReference(parsing: text)
    _ = Digest(parsing: text)
    _ = ImageReference.isValidName(text)
    _ = ImageReference.isValidTag(text)
    return 0
}

// SwiftPM links an executable's entry point as `FuzzManifest_main`; here it hands over to
// libFuzzer's driver, which parses the command line and calls the function above.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("FuzzManifest_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, { fuzzManifest($0, $1) })
}

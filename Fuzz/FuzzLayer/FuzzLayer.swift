import BlobStore
import Foundation
import GC

/// Any bytes pushed as an image layer, then indexed as the mount indexes it: gzip or zstd
/// detection and decompression, the tar walk, the index stored and read back. One store
/// for the whole run (in a temporary folder); each input is removed again and collected
/// now and then, so the store stays small.
let store: Store = {
    let root = NSTemporaryDirectory() + "blobstore-fuzz-layer-\(getpid())"
    try? FileManager.default.removeItem(atPath: root)
    do { return try Store.create(at: root) } catch { fatalError("cannot create the fuzz store at \(root): \(error)") }
}()

nonisolated(unsafe) var runs = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLayer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let put = try? store.ingest(bytes: bytes, mediaType: MediaType.ociLayer) else { return 0 }
    if let index = try? store.layerIndex(put.digest) {
        for entry in index.entries where entry.kind == .regular && entry.size <= 1 << 16 {
            _ = try? store.read(index.tar, range: entry.dataOffset..<entry.dataOffset + entry.size) { _ in }
        }
    }
    _ = try? store.remove(put.digest)
    runs += 1
    if runs % 1000 == 0 { _ = try? GarbageCollector(store: store).collect() }
    return 0
}

// SwiftPM links an executable's entry point as `FuzzLayer_main`; here it hands over to
// libFuzzer's driver, which parses the command line and calls the function above.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>,
                     _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("FuzzLayer_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, { fuzzLayer($0, $1) })
}

/// `pipeline-count <what> <n>`: runs one pipeline operation `n` times after a warm-up, for an instruction count
/// under callgrind (bench/pipeline-callgrind.sh runs it twice with different `n` and takes the difference, so the
/// process's start-up, the JIT and the warm-up cancel out).
module CcRelay.Core.Bench.PipelineCount

open System
open CcRelay.Core

let private warmUp = 2_000

/// What one call does: `three` the three byte edits of `PipelineBenchmarks` (fused, as a pipeline runs them),
/// `reader` the request-facts reader (one `Utf8JsonReader` pass, the reference), `inspect` what every request
/// pays to read its facts (`RequestFacts.inspect`), on the `small` (5.6 KB) or `large` (≈ 120 KB) body.
let run (what: string) (size: string) (n: int) : int =
    let bench = PipelineBenchmarks(Size = size)
    bench.Setup()
    let inspect = InspectBenchmarks(Size = size)
    inspect.Setup()

    let call: unit -> int =
        match what with
        | "three" -> fun () -> (bench.ThreeByteEdits()).Body.Length
        | "reader" ->
            fun () ->
                inspect.Reader() |> ignore
                1
        | "inspect" ->
            fun () ->
                inspect.Inspect() |> ignore
                1
        | other -> failwith $"pipeline-count: unknown operation %s{other} (three | reader | inspect)"

    let mutable sink = 0

    for _ in 1..warmUp do
        sink <- sink + call ()

    for _ in 1..n do
        sink <- sink + call ()

    Console.WriteLine($"%s{what} %s{size} n=%d{n} sink=%d{sink}")
    0

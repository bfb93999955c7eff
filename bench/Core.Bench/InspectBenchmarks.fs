namespace CcRelay.Core.Bench

open System
open System.IO
open System.Text
open BenchmarkDotNet.Attributes
open CcRelay.Core

/// Reading a request body's facts (`RequestFacts.inspect`: the fast path, falling back to the reader) against
/// the `Utf8JsonReader` pass alone, on the benchmark's Claude-Code-shaped body (5.6 KB) and on a long
/// conversation (the same turns repeated to about 120 KB, the size Claude Code sends after a few tool calls).
[<MemoryDiagnoser>]
type InspectBenchmarks() =

    let mutable body: byte array = [||]

    /// `small` = bench/payloads/messages.template.json; `large` = its messages repeated to about 120 KB.
    [<Params("small", "large")>]
    member val Size: string = "small" with get, set

    [<GlobalSetup>]
    member this.Setup() : unit =
        let rec find (dir: DirectoryInfo | null) =
            match dir with
            | null -> failwith "bench/payloads/messages.template.json not found above the working directory"
            | dir ->
                let path = Path.Combine(dir.FullName, "bench", "payloads", "messages.template.json")
                if File.Exists path then path else find dir.Parent

        let template =
            File
                .ReadAllText(find (DirectoryInfo(Environment.CurrentDirectory)))
                .Replace("__STREAM__", "true")
                .Replace("__BENCH__", "cc-bench:deltas=3")

        let text =
            if this.Size = "small" then
                template
            else
                // repeat the messages array's turns until the body is about 120 KB
                let start = template.IndexOf("\"messages\":[") + "\"messages\":[".Length
                let mutable depth = 0
                let mutable finish = start

                // the end of the messages array: the bracket that closes it
                let mutable i = start
                let mutable inString = false

                while finish = start do
                    let c = template[i]

                    if inString then
                        if c = '\\' then
                            i <- i + 1
                        elif c = '"' then
                            inString <- false
                    elif c = '"' then
                        inString <- true
                    elif c = '[' || c = '{' then
                        depth <- depth + 1
                    elif c = ']' || c = '}' then
                        if depth = 0 then finish <- i else depth <- depth - 1

                    i <- i + 1

                let turns = template.Substring(start, finish - start)
                let copies = max 1 (120_000 / max 1 turns.Length)
                let repeated = String.Join(",", Array.create copies turns)
                template.Substring(0, start) + repeated + template.Substring(finish)

        body <- Encoding.UTF8.GetBytes text

        match RequestFacts.tryFast (ReadOnlySpan body) with
        | ValueSome _ -> ()
        | ValueNone -> failwith "the benchmark body does not take the fast path"

    /// The body the benchmarks read (after `Setup`), for other benchmarks over the same bodies.
    member _.Body: byte array = body

    [<Benchmark(Baseline = true)>]
    member _.Reader() : RequestFacts =
        match RequestFacts.inspectWithReader (ReadOnlySpan body) with
        | Ok facts -> facts
        | Error e -> failwith $"%A{e}"

    [<Benchmark>]
    member _.Inspect() : RequestFacts =
        match RequestFacts.inspect (ReadOnlySpan body) with
        | Ok facts -> facts
        | Error e -> failwith $"%A{e}"

namespace CcRelay.Core.Bench

open System
open BenchmarkDotNet.Attributes
open CcRelay.Core

/// A pipeline of three built-in byte-edit transformers (`max_tokens` cap, `strip_cache_control`, `drop_fields`)
/// over the Claude-Code-shaped bodies of `InspectBenchmarks` (small 5.6 KB, large ≈ 120 KB), and the selection
/// of an attempt's pipelines (what every request pays when pipelines are configured but none applies).
/// The budget (issue 20 §6): ≤ 5 µs per request for the three edits.
[<MemoryDiagnoser>]
type PipelineBenchmarks() =

    let mutable body: byte array = [||]

    let steps: PipelineStep list = [
        {
            Name = "max_tokens"
            Transform = Transform.MaxTokens(Some 8192L, None)
            OnError = OnError.Fail
        }
        {
            Name = "strip_cache_control"
            Transform = Transform.StripCacheControl
            OnError = OnError.Fail
        }
        {
            Name = "drop_fields"
            Transform = Transform.DropFields([ "metadata" ], false)
            OnError = OnError.Fail
        }
    ]

    let config: PipelinesConfig = {
        Pipelines = [
            {
                Name = "p"
                OnError = OnError.Fail
                Request = steps
                Response = []
                Attach = {
                    Providers = [ "other" ]
                    Models = [ "gpt-*" ]
                    Stages = [ "think" ]
                }
            }
        ]
        Plugins = []
    }

    [<Params("small", "large")>]
    member val Size: string = "small" with get, set

    [<GlobalSetup>]
    member this.Setup() : unit =
        let inspect = InspectBenchmarks(Size = this.Size)
        inspect.Setup()
        body <- inspect.Body

        let run = Pipeline.runBuiltIn steps "anthropic" None (Pipeline.start body)

        if run.Failure.IsSome || not run.Changed then
            failwith $"the benchmark pipeline did nothing: %s{Pipeline.report run}"

    /// The three steps as a pipeline runs them: fused into one scan and one splice.
    [<Benchmark>]
    member _.ThreeByteEdits() : PipelineRun =
        Pipeline.runBuiltIn steps "anthropic" None (Pipeline.start body)

    /// The same three steps one after another, each scanning the body the previous one made.
    [<Benchmark>]
    member _.ThreeByteEditsOneByOne() : PipelineRun =
        steps
        |> List.fold
            (fun run step -> Pipeline.record run step (Transformers.applyRequest step.Transform None run.Body))
            (Pipeline.start body)

    /// One member scan of the body with `Utf8JsonReader` (the scan's fallback), for scale.
    [<Benchmark>]
    member _.ReaderScan() : int =
        match JsonSpans.scanReader (ReadOnlySpan body) 512 [ "max_tokens"; "cache_control"; "metadata" ] with
        | Ok(objects, _, _) -> objects.Length
        | Error _ -> -1

    [<Benchmark>]
    member _.SelectNone() : SelectedPipeline =
        Pipeline.select config "anthropic" "claude-sonnet-4-6" "default"

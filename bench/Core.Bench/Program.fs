module CcRelay.Core.Bench.Program

open BenchmarkDotNet.Running

[<EntryPoint>]
let main (argv: string array) : int =
    match List.ofArray argv with
    | "estimate-accuracy" :: files -> EstimateAccuracy.run files
    | [ "pipeline-count"; what; size; n ] -> PipelineCount.run what size (int n)
    | _ ->
        BenchmarkSwitcher.FromAssembly(typeof<PlanBenchmarks>.Assembly).Run(argv)
        |> ignore

        0

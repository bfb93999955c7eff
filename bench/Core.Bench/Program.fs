module CcRelay.Core.Bench.Program

open BenchmarkDotNet.Running

[<EntryPoint>]
let main (argv: string array) : int =
    BenchmarkSwitcher.FromAssembly(typeof<PlanBenchmarks>.Assembly).Run(argv)
    |> ignore

    0

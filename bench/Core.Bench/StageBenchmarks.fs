namespace CcRelay.Core.Bench

open System
open System.IO
open System.Text
open BenchmarkDotNet.Attributes
open CcRelay.Core

/// What routing-stage classification adds to reading a request (issue 20 §6), side by side in one run:
/// `Unstaged` — no `routing.stages`: `RequestFacts.inspect` and `Stages.classify` (which then reads nothing);
/// `OnePass` — stages configured: `RequestFacts.inspectWithStages` (the stage facts in the same pass) and classify;
/// `TwoPasses` — what it was before: `inspect`, then the stage facts in a `Utf8JsonReader` pass of their own
/// (`RequestFacts.readStageFacts`, the former `Stages.inspect`), then the decision.
/// Bodies: the benchmark's request (bench/payloads, 5.6 KB) and Claude Code's recorded main-loop request
/// (tests/fixtures/claude-code/main-loop.body.json, 113 KB: a 25 KB system prompt, tools, a conversation).
[<MemoryDiagnoser>]
type StageBenchmarks() =

    let mutable body: byte array = [||]

    let provider =
        Config.defaultProvider "p" ProviderType.AnthropicCompatible (Uri "https://p.example.test")

    let unstaged = {
        Config.defaults with
            Providers = [ provider ]
    }

    /// Every stage configured, all on the one provider (as bench/lib.sh's `staged` variant).
    let staged = {
        unstaged with
            Routing = {
                Config.defaultRouting with
                    Stages = {
                        Config.defaultStages with
                            Routes = Stage.all |> List.map (fun (_, s) -> s, [ { Provider = "p"; Model = None } ])
                    }
            }
    }

    let headers =
        Stages.headersOf
            ""
            "claude-code-20250219,interleaved-thinking-2025-05-14"
            "claude-cli/2.1.197 (external, cli)"
            "cli"

    /// `template` = bench/payloads/messages.template.json; `main-loop` = the recorded Claude Code request.
    [<Params("template", "main-loop")>]
    member val Body: string = "template" with get, set

    [<GlobalSetup>]
    member this.Setup() : unit =
        let relative =
            if this.Body = "template" then
                Path.Combine("bench", "payloads", "messages.template.json")
            else
                Path.Combine("tests", "fixtures", "claude-code", "main-loop.body.json")

        let rec find (dir: DirectoryInfo | null) =
            match dir with
            | null -> failwith $"%s{relative} not found above the working directory"
            | dir ->
                let path = Path.Combine(dir.FullName, relative)
                if File.Exists path then path else find dir.Parent

        body <-
            File
                .ReadAllText(find (DirectoryInfo(Environment.CurrentDirectory)))
                .Replace("__STREAM__", "true")
                .Replace("__BENCH__", "cc-bench:deltas=3")
            |> Encoding.UTF8.GetBytes

        if (RequestFacts.tryFastWith true (ReadOnlySpan body)).IsNone then
            failwith "the benchmark body does not take the fast path"

        if this.OnePass() <> this.TwoPasses() then
            failwith "the one pass and the two passes disagree"

    [<Benchmark(Baseline = true)>]
    member _.Unstaged() : StageDecision =
        match RequestFacts.inspect (ReadOnlySpan body) with
        | Ok facts -> Stages.classify unstaged facts headers
        | Error e -> failwith $"%A{e}"

    [<Benchmark>]
    member _.OnePass() : StageDecision =
        match RequestFacts.inspectWithStages (ReadOnlySpan body) with
        | Ok facts -> Stages.classify staged facts headers
        | Error e -> failwith $"%A{e}"

    [<Benchmark>]
    member _.TwoPasses() : StageDecision =
        match RequestFacts.inspect (ReadOnlySpan body) with
        | Ok facts -> Stages.decide staged facts (RequestFacts.readStageFacts (ReadOnlySpan body)) headers
        | Error e -> failwith $"%A{e}"

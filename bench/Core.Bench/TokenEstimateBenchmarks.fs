namespace CcRelay.Core.Bench

open System
open System.IO
open System.Text
open System.Text.Json.Nodes
open BenchmarkDotNet.Attributes
open Microsoft.ML.Tokenizers
open CcRelay.Core

/// The input-token estimate a translated stream's `message_start` carries: what the relay computes now (the
/// translation, whose estimate is the translated request's bytes / 4) against counting the translated request with
/// the `o200k_base` tokenizer as `count_tokens` does (`TokenEstimate.ofBody`, the host's tokenizer settings), on a
/// Claude-Code-shaped body (bench/payloads/messages.template.json, 5.6 KB) and on its turns repeated to about 100 KB.
[<MemoryDiagnoser>]
type TokenEstimateBenchmarks() =

    let mutable body: byte array = [||]
    let mutable translated: byte array = [||]

    static member val internal O200k: Tokenizer = TiktokenTokenizer.CreateForEncoding "o200k_base"

    /// Counts as the host's `TokenCounter.CountText` does.
    static member val internal Count: Func<TokenEncoding, string, int> =
        Func<TokenEncoding, string, int>(fun _ text ->
            TokenEstimateBenchmarks.O200k.CountTokens(
                text,
                considerPreTokenization = true,
                considerNormalization = true
            ))

    static member internal Settings: OpenAiSettings = {
        ReasoningField = ReasoningField.ReasoningContent
        MaxTokensField = MaxTokensField.MaxTokens
        StreamUsage = true
        Thinking = ThinkingControl.ThinkingField
        Api = OpenAiApi.Chat
        OnDropped = DroppedPolicy.Report
        MidSystem = MidSystem.InPlace
    }

    /// bench/payloads/messages.template.json as Claude Code would send it (streaming).
    static member internal Template() : string =
        let rec find (dir: DirectoryInfo | null) =
            match dir with
            | null -> failwith "bench/payloads/messages.template.json not found above the working directory"
            | dir ->
                let path = Path.Combine(dir.FullName, "bench", "payloads", "messages.template.json")
                if File.Exists path then path else find dir.Parent

        File
            .ReadAllText(find (DirectoryInfo(Environment.CurrentDirectory)))
            .Replace("__STREAM__", "true")
            .Replace("__BENCH__", "cc-bench:deltas=3")

    /// `body` with its messages repeated (turn pairs in order) until it is at least `bytes` long.
    static member internal Grown (body: string) (bytes: int) : string =
        let root = (nonNull (JsonNode.Parse body)).AsObject()
        let messages = (nonNull root["messages"]).AsArray()
        let turns = [ for m in messages -> (nonNull m).ToJsonString() ]

        while Encoding.UTF8.GetByteCount(root.ToJsonString()) < bytes do
            for turn in turns do
                messages.Add(JsonNode.Parse turn)

        root.ToJsonString()

    /// `small` = the template (5.6 KB); `100KB` = its turns repeated to about 100 KB.
    [<Params("small", "100KB")>]
    member val Size: string = "small" with get, set

    [<GlobalSetup>]
    member this.Setup() : unit =
        let template = TokenEstimateBenchmarks.Template()

        let text =
            if this.Size = "small" then
                template
            else
                TokenEstimateBenchmarks.Grown template 100_000

        body <- Encoding.UTF8.GetBytes text

        translated <-
            match ChatRequest.translate TokenEstimateBenchmarks.Settings "gpt-5" true (ReadOnlySpan body) with
            | Ok t -> t.Body
            | Error e -> failwith e

    /// What a translated request costs now: the translation, with its bytes / 4 estimate.
    [<Benchmark(Baseline = true)>]
    member _.TranslateWithBytesOver4() : int =
        match ChatRequest.translate TokenEstimateBenchmarks.Settings "gpt-5" true (ReadOnlySpan body) with
        | Ok t -> t.EstimatedInputTokens
        | Error _ -> -1

    /// What the tokenizer estimate would add: the translated request counted with o200k_base.
    [<Benchmark>]
    member _.TokenizerCountOfTranslated() : int =
        TokenEstimate.ofBody TokenEstimateBenchmarks.Count false (ReadOnlySpan translated)
        |> Option.defaultValue -1

/// `estimate-accuracy FILE...`: the bytes / 4 estimate of `message_start` against the `o200k_base` count of the same
/// translated request, per recorded body. A FILE is a JSON request body (Anthropic's), or a JSONL capture (the E2E
/// fakes' logs) whose `bodyText` fields are request bodies: Anthropic bodies are translated to Chat Completions
/// first; Chat Completions bodies (a capture of a translated target) are counted as they are.
module EstimateAccuracy =

    let private bodiesOf (path: string) : string list =
        let text = File.ReadAllText path

        if path.EndsWith(".jsonl", StringComparison.Ordinal) then
            text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            |> Array.choose (fun line ->
                match JsonNode.Parse line with
                | null -> None
                | node ->
                    match node["bodyText"] with
                    | null -> None
                    | b ->
                        let s = b.GetValue<string>()

                        if s.StartsWith("{", StringComparison.Ordinal) && s.Contains("\"messages\"") then
                            Some s
                        else
                            None)
            |> List.ofArray
        else
            [ text.Replace("__STREAM__", "true").Replace("__BENCH__", "cc-bench") ]

    /// Whether a body is already Chat Completions (a `messages` array with a `system` or `tool` role, or no
    /// Anthropic-only member), rather than Anthropic's.
    let private isChat (body: string) : bool =
        let root = (nonNull (JsonNode.Parse body)).AsObject()

        not (root.ContainsKey "system")
        && (nonNull root["messages"]).AsArray()
           |> Seq.exists (fun m ->
               let message: JsonNode = nonNull m
               let role = (nonNull message["role"]).GetValue<string>()
               role = "system" || role = "tool")

    let run (files: string list) : int =
        printfn "| body | bytes sent | bytes / 4 (now) | o200k count | bytes/4 ÷ count | bytes per token |"
        printfn "|---|---|---|---|---|---|"
        let mutable ratios = []

        for file in files do
            for i, body in bodiesOf file |> List.indexed do
                let chat, estimate =
                    if isChat body then
                        let bytes = Encoding.UTF8.GetBytes body
                        bytes, (bytes.Length + 3) / 4
                    else
                        match
                            ChatRequest.translate
                                TokenEstimateBenchmarks.Settings
                                "gpt-5"
                                true
                                (ReadOnlySpan(Encoding.UTF8.GetBytes body))
                        with
                        | Ok t -> t.Body, t.EstimatedInputTokens
                        | Error e -> failwith e

                match TokenEstimate.ofBody TokenEstimateBenchmarks.Count false (ReadOnlySpan chat) with
                | Some count when count > 0 ->
                    let ratio = float estimate / float count
                    ratios <- (float chat.Length / float count) :: ratios

                    printfn
                        "| %s#%d | %d | %d | %d | %.3f | %.2f |"
                        (Path.GetFileName file)
                        i
                        chat.Length
                        estimate
                        count
                        ratio
                        (float chat.Length / float count)
                | _ -> ()

        match ratios with
        | [] -> 1
        | ratios ->
            let sorted = List.sort ratios

            printfn
                "\n%d bodies: bytes per token min %.2f, median %.2f, max %.2f"
                ratios.Length
                sorted.Head
                sorted[sorted.Length / 2]
                (List.last sorted)

            0

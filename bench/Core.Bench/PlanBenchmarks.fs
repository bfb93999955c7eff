namespace CcRelay.Core.Bench

open System
open BenchmarkDotNet.Attributes
open CcRelay.Core

/// The request hot path: plan + key selection + breaker admit, for 5 providers × 10 keys each, every key
/// limited on RPM, ITPM and OTPM (so every candidate key's three buckets are refilled and scored).
[<MemoryDiagnoser>]
type PlanBenchmarks() =

    let key (provider: int) (index: int) : KeyConfig = {
        Key = $"sk-bench-%d{provider}-%d{index}"
        RpmLimit = 4_000
        ItpmLimit = 2_000_000
        OtpmLimit = 400_000
        TpmLimit = 0
        Priority = index % 2
        Weight = 1 + index % 3
        Aws = None
    }

    let provider (index: int) : ProviderConfig = {
        Config.defaultProvider $"p%d{index}" ProviderType.AnthropicCompatible (Uri $"https://p%d{index}.example.test") with
            Keys = [ for k in 0..9 -> key index k ]
            Priority = index % 3
            Weight = 1 + index
            Models = [ "claude-sonnet-4-6" ]
    }

    let mutable runtime: RelayRuntime = Relay.create TimeSpan.Zero Config.defaults

    let request: RouteRequest = {
        Model = "claude-sonnet-4-6"
        EstimatedInputTokens = 12_000
        ExpectedOutputTokens = 1_024
        ThinkingSignatures = false
        ConversationKey = 0UL
        ClientCredential = false
        Seed = 0x5EEDUL
        ArrivedAt = TimeSpan.FromSeconds 10.0
    }

    /// The routing strategy (`routing.strategy` spelling).
    [<Params("failover", "round_robin", "least_loaded", "model_based")>]
    member val Strategy: string = "failover" with get, set

    /// The key strategy (`pooling.strategy` spelling).
    [<Params("least_loaded", "round_robin")>]
    member val KeyStrategy: string = "least_loaded" with get, set

    [<GlobalSetup>]
    member this.Setup() : unit =
        let strategy =
            RoutingStrategy.all |> List.find (fun (n, _) -> n = this.Strategy) |> snd

        let keyStrategy =
            KeyStrategy.all |> List.find (fun (n, _) -> n = this.KeyStrategy) |> snd

        let config = {
            Config.defaults with
                Providers = [
                    for p in 0..4 ->
                        {
                            provider p with
                                KeyStrategy = keyStrategy
                        }
                ]
                Routing = {
                    Config.defaultRouting with
                        Strategy = strategy
                        ModelRules = [
                            {
                                Pattern = "claude-sonnet"
                                Provider = "p3"
                            }
                            { Pattern = "claude"; Provider = "p1" }
                        ]
                }
        }

        // Some traffic first, so the buckets are part-used and the latency table is filled.
        let mutable rt = Relay.create TimeSpan.Zero config

        for i in 1..200 do
            let now = TimeSpan.FromMilliseconds(float (i * 20))
            let planned = Relay.plan rt now { request with Seed = uint64 i }
            let next = Relay.next planned.Runtime now planned.Value

            match next.Value with
            | struct (Step.Send attempt, dispatch) ->
                let done' =
                    Relay.complete
                        next.Runtime
                        now
                        dispatch
                        attempt
                        (AttemptResult.Answered(200, ValueNone, TimeSpan.FromMilliseconds(float (100 + i % 50))))

                rt <- Relay.release done'.Runtime attempt
            | _ -> rt <- next.Runtime

        runtime <- rt

    /// `Relay.plan` then `Relay.next` up to the first `Send`.
    [<Benchmark>]
    member _.PlanAndAdmit() : Step =
        let now = TimeSpan.FromSeconds 10.0
        let planned = Relay.plan runtime now request
        let next = Relay.next planned.Runtime now planned.Value
        let struct (step, _) = next.Value
        step

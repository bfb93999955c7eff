namespace CcRelay.Core

open System

/// Why a client's request is refused before its limits are even consulted.
type ClientDenial = {
    Type: ErrorType
    /// The short reason for metrics: `model`, `provider`, `stage`.
    Reason: string
    Message: string
}

/// The checks of a client's request before routing: the model it asks for, the providers it may use, and what
/// it demands of its limits (`ClientLimits.admit`).
[<RequireQualifiedAccess>]
module ClientAdmission =

    /// Decides what a request of `client` demands, or denies it: a model outside `models`, or no enabled provider
    /// among `providers`, is a 400 `invalid_request_error` (retrying never helps; not 403, which Claude Code shows
    /// as "Failed to authenticate"). The cost estimate is the dearest over
    /// the providers the client may be routed to (`tableOf` gives a provider's price table).
    let decide
        (client: ClientConfig)
        (candidates: ProviderConfig seq)
        (tableOf: Func<string, PriceTable>)
        (facts: RequestFacts)
        : Result<ClientDemand, ClientDenial> =
        if not (ClientKeys.allowsModel client facts.Model) then
            Error {
                Type = ErrorType.InvalidRequest
                Reason = "model"
                Message =
                    $"""client %s{client.Name} may not use model %s{facts.Model}; allowed: %s{String.Join(", ", client.Models)}"""
            }
        else
            let input = int64 (max 0 facts.EstimatedInputTokens)
            let output = int64 (max 0 facts.MaxTokens)
            // the dearest estimate over the providers the client may use (a loop: this runs on every request)
            let mutable allowed = false
            let mutable cost = 0m

            for p in candidates do
                if ClientKeys.allowsProvider client p.Name then
                    let estimate =
                        ClientLimits.estimate (Pricing.tryFind (tableOf.Invoke p.Name) facts.Model) input output

                    if not allowed || estimate > cost then
                        cost <- estimate

                    allowed <- true

            if not allowed then
                Error {
                    Type = ErrorType.InvalidRequest
                    Reason = "provider"
                    Message =
                        $"""client %s{client.Name} may use providers %s{String.Join(", ", client.Providers)}, none of which is enabled"""
                }
            else
                Ok {
                    Model = facts.Model
                    InputTokens = input
                    OutputTokens = output
                    CostUsd = cost
                }

    /// Whether `client` may send a request of `stage` (the stage it is routed by, `Stages.classify`): a client
    /// with `stages` is refused any other with a 400 `invalid_request_error` naming the stage and the allowed
    /// ones (retrying never helps); no `stages` allows every stage.
    let admitStage (client: ClientConfig) (stage: Stage) : Result<unit, ClientDenial> =
        let name = Stage.wireName stage

        if ClientKeys.allowsStage client (Some name) then
            Ok()
        else
            Error {
                Type = ErrorType.InvalidRequest
                Reason = "stage"
                Message =
                    $"""client %s{client.Name} may not send %s{name} requests (stage %s{name}); allowed stages: %s{String.Join(", ", client.Stages)}"""
            }

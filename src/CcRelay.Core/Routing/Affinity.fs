namespace CcRelay.Core

open System
open System.Text.Json

/// Thinking-signature affinity.
///
/// Thinking blocks carry signatures (and `redacted_thinking` blocks encrypted data) that only the provider
/// family that minted them can verify. So:
///
/// 1. Every success pins the request's *conversation* to the family that answered (`Relay.record`).
/// 2. A request that replays signed thinking blocks is planned with its pinned family first.
/// 3. When it must cross to another family (the pinned one is down or exhausted), the attempt says
///    `StripThinking`, and the host sends what `ThinkingTurn.carry` makes of the body instead: the other family
///    could not verify the blocks, and answering without the old reasoning beats failing the user.
/// 4. A provider that still rejects a signature (a 400 that `isSignatureError` recognises) gets one retry
///    with thinking stripped, on the same provider, without touching breakers or keys.
///
/// The conversation is keyed by `x-claude-code-session-id` when the client sends it (Claude Code does),
/// else by a hash of the raw bytes of `messages[0]`, which a client replays unchanged on every turn.
[<RequireQualifiedAccess>]
module Affinity =

    // built once (a `"…"B` literal is a new array at every evaluation)
    let private messageName: byte array = "message"B

    let private fnv (seed: uint64) (bytes: ReadOnlySpan<byte>) : uint64 =
        let mutable hash = seed

        for b in bytes do
            hash <- (hash ^^^ uint64 b) * 1099511628211UL

        hash

    /// The conversation key of a request: from the session id when there is one, else from `messages[0]`;
    /// 0 when neither exists.
    let conversationKey (sessionId: string | null) (body: ReadOnlySpan<byte>) (facts: RequestFacts) : uint64 =
        let nonZero (key: uint64) = if key = 0UL then 1UL else key

        match sessionId with
        | NonNull id when id.Length > 0 ->
            nonZero (fnv 14695981039346656037UL (Runtime.InteropServices.MemoryMarshal.AsBytes(id.AsSpan())))
        | _ when
            facts.FirstMessageStart >= 0
            && facts.FirstMessageLength > 0
            && facts.FirstMessageStart + facts.FirstMessageLength <= body.Length
            ->
            // Another seed, so that a session id and a message are two separate key spaces.
            nonZero (fnv 1469598103934665603UL (body.Slice(facts.FirstMessageStart, facts.FirstMessageLength)))
        | _ -> 0UL

    /// Whether an upstream 400 body complains about a thinking signature (`…Invalid \`signature\` in
    /// \`thinking\` block`, or Gemini's missing or invalid `thought_signature`). Looks at `error.message` only.
    let isSignatureError (body: ReadOnlySpan<byte>) : bool =
        let mutable reader = Utf8JsonReader(body)
        let mutable found = false

        try
            while not found && reader.Read() do
                if
                    reader.TokenType = JsonTokenType.PropertyName
                    && reader.CurrentDepth = 2
                    && reader.ValueTextEquals messageName
                then
                    reader.Read() |> ignore

                    if reader.TokenType = JsonTokenType.String then
                        match reader.GetString() with
                        | NonNull message ->
                            found <-
                                message.Contains("signature", StringComparison.OrdinalIgnoreCase)
                                && message.Contains("thinking", StringComparison.OrdinalIgnoreCase)
                                // Gemini 3: "Function call is missing a thought_signature in functionCall parts…"
                                || message.Contains("thought_signature", StringComparison.OrdinalIgnoreCase)
                                || message.Contains("thoughtSignature", StringComparison.Ordinal)
                        | _ -> ()
        with
        | :? JsonException
        | :? InvalidOperationException -> ()

        found

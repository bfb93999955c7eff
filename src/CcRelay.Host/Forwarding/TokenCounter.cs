using System.Security.Cryptography;
using CcRelay.Core;
using Microsoft.ML.Tokenizers;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// <c>count_tokens</c> for translated providers: Core's <see cref="TokenEstimate"/> over the translated request, with
/// tiktoken's own encodings (<c>o200k_base</c>, <c>cl100k_base</c>, packaged by Microsoft.ML.Tokenizers) counting the
/// text. Identical requests that arrive together (Claude Code fires dozens at start-up) share one computation: the
/// first computes, the rest await its task (single-flight, keyed by the SHA-256 of the translated request, which
/// names the model). Nothing is kept once the computation ends.
/// </summary>
internal static class TokenCounter
{
    private static readonly Lazy<Tokenizer?> O200k = new(() => Create("o200k_base"));
    private static readonly Lazy<Tokenizer?> Cl100k = new(() => Create("cl100k_base"));
    private static readonly SingleFlight<byte[]?> Flights = new();
    private static readonly Func<TokenEncoding, string, int> Count = CountText;

    /// <summary>
    /// The <c>count_tokens</c> answer for <paramref name="plan"/> with the tokenizer over <paramref name="payload"/>;
    /// null when the plan is not a translated count, or no tokenizer could be loaded (the plan's own estimate answers).
    /// </summary>
    public static async Task<byte[]?> AnswerAsync(UpstreamPlan plan, ReadOnlyMemory<byte> payload)
    {
        if (!plan.Operation.IsCountTokens || !plan.Body.IsTranslate || O200k.Value is null || Cl100k.Value is null)
        {
            return null;
        }

        // the caller that computes awaits too, so the payload it lends the computation outlives it
        var key = Convert.ToHexString(SHA256.HashData(payload.Span));
        return await Flights.RunAsync(key, () => Task.Run(() => Dialect.countTokens(plan, payload.Span, Count) is { } answer ? answer.Value : null));
    }

    /// <summary>Loads both encodings' data and runs each once (<see cref="TokenizerWarmup"/>).</summary>
    public static void Warm()
    {
        O200k.Value?.CountTokens("warm up");
        Cl100k.Value?.CountTokens("warm up");
    }

    /// <summary>The tokens of <paramref name="text"/> in <paramref name="encoding"/> (special-token text counted as text).</summary>
    internal static int CountText(TokenEncoding encoding, string text) =>
        (encoding.IsCl100k ? Cl100k.Value : O200k.Value)!.CountTokens(text, considerPreTokenization: true, considerNormalization: true);

    private static Tokenizer? Create(string encoding)
    {
        try
        {
            return TiktokenTokenizer.CreateForEncoding(encoding);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or NotSupportedException or ArgumentException)
        {
            // the packaged data could not be loaded: count_tokens answers with the plan's byte estimate instead
            return null;
        }
    }
}

using CcRelay.Core;
using Microsoft.Extensions.Hosting;

namespace CcRelay.Host.Forwarding;

/// <summary>
/// Loads <c>count_tokens</c>' tokenizer data (<see cref="TokenCounter"/>) at start-up, off the request path, when the
/// config has an <c>openai</c> provider: the first count after start would otherwise pay the load (about 0.9 s on a
/// loaded 2-core machine) while Claude Code waits on it. A provider added by a later reload loads it on first use.
/// </summary>
internal sealed class TokenizerWarmup(RelayConfig config) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (config.Providers.Any(p => p.Type.IsOpenAi))
        {
            // not awaited: start-up does not wait for it, and a count that comes first waits on the same Lazy
            _ = Task.Run(TokenCounter.Warm, CancellationToken.None);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

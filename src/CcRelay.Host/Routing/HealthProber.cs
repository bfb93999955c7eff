using System.Net.Http.Headers;
using CcRelay.Core;
using CcRelay.Host.Credentials;
using CcRelay.Host.Logging;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace CcRelay.Host.Routing;

/// <summary>
/// Health checks for providers whose circuit is open: on a <see cref="TimeProvider"/> timer, asks Core which
/// probes are due (<c>RelayHealth.probesDue</c>), sends them, and reports each (<c>RelayHealth.probed</c>);
/// a successful probe half-opens the circuit before its break is over. A probe succeeds on a 2xx answer.
/// </summary>
internal sealed class HealthProber(
    RuntimeCell cell,
    HttpMessageInvoker invoker,
    CloudCredentials credentials,
    TimeProvider timeProvider,
    ILogger<HealthProber> logger) : BackgroundService
{
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Tick(), timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var now = cell.Now;
                var due = cell.Transition(runtime => RelayHealth.probesDue(runtime, now));
                if (!due.IsEmpty)
                {
                    await Task.WhenAll(due.Select(probe => ProbeAsync(probe, stoppingToken)));
                }

                timer.Period = Tick();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // shutting down
        }
    }

    /// <summary>Half the configured interval, between 250 ms and 5 s (Core spaces each provider's probes).</summary>
    private TimeSpan Tick()
    {
        var interval = cell.Current.Policy.HealthCheckInterval / 2;
        return interval < TimeSpan.FromMilliseconds(250) ? TimeSpan.FromMilliseconds(250)
            : interval > TimeSpan.FromSeconds(5) ? TimeSpan.FromSeconds(5)
            : interval;
    }

    private async Task ProbeAsync(Probe probe, CancellationToken stoppingToken)
    {
        bool succeeded;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            timeout.CancelAfter(ProbeTimeout);
            // the probe is the plan a request would get: its URL, headers, credential and signing
            var plan = probe.Plan;
            using var request = new HttpRequestMessage(new HttpMethod(probe.Method), plan.Url);
            if (probe.Body.Length > 0)
            {
                request.Content = new ByteArrayContent(probe.Body);
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            }

            if (!plan.DropHeaders.Contains("anthropic-version"))
            {
                request.Headers.TryAddWithoutValidation("anthropic-version", "2023-06-01");
            }

            foreach (var (name, value) in plan.SetHeaders)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }

            foreach (var (name, value) in plan.Credentials)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }

            if (await credentials.ApplyAsync(request, plan, probe.Body, timeout.Token) is not null)
            {
                succeeded = false;
            }
            else
            {
                using var response = await invoker.SendAsync(request, timeout.Token);
                succeeded = Dialect.probeSucceeded(plan, (int)response.StatusCode);
            }
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !stoppingToken.IsCancellationRequested)
        {
            succeeded = false;
        }

        var now = cell.Now;
        cell.Transition(runtime => RelayHealth.probed(runtime, now, probe.Provider.Name, succeeded));

        // logged after the swap (as every state change is): whoever reads the line sees the state it reports
        Log.HealthProbed(logger, probe.Provider.Name, probe.Plan.Url.ToString(), succeeded);
    }

    public override void Dispose()
    {
        invoker.Dispose();
        base.Dispose();
    }
}

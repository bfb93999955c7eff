using CcRelay.Core;
using CcRelay.Host.Logging;
using CcRelay.Host.Reload;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.FSharp.Collections;

namespace CcRelay.Host.Edge;

/// <summary>
/// The audit log (<c>security.audit_log</c>): one JSON line per security-relevant event — who, what, when, from
/// where, how it ended — appended to a file created with mode 0600 and flushed line by line. Events:
/// authentication failures (at most <c>auth_failures_per_minute</c> per source address, the rest counted into the
/// next written one), config reloads, operator calls of the management API, refused status reads, and — for the
/// client keys and budgets — <see cref="ClientKeyChanged"/> and <see cref="BudgetBlocked"/>. No secret is written:
/// credentials appear only as key ids, and every value is scrubbed of the running config's secrets.
/// Without <c>security.audit_log</c> every method does nothing.
/// </summary>
public sealed class AuditTrail : IDisposable
{
    private readonly Lock _gate = new();
    private readonly RelayState _state;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<AuditTrail> _logger;
    private readonly int _perMinute;
    private FileStream? _file;
    private AuthFailureLimiter _limiter = AuthFailureLimiterModule.empty;

    internal AuditTrail(RelayState state, TimeProvider timeProvider, ILogger<AuditTrail> logger)
    {
        _state = state;
        _timeProvider = timeProvider;
        _logger = logger;
        var audit = state.Current.Config.Edge.Security.Audit;
        _perMinute = audit?.Value.AuthFailuresPerMinute ?? 0;
        if (audit is not null)
        {
            _file = Open(audit.Value.Path);
        }
    }

    /// <summary>Whether events are written at all.</summary>
    public bool Enabled => _file is not null;

    /// <summary>Opens (or creates, mode 0600) the audit file for appending.</summary>
    internal static FileStream Open(string path)
    {
        var options = new FileStreamOptions
        {
            Mode = FileMode.Append,
            Access = FileAccess.Write,
            Share = FileShare.Read,
        };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var file = new FileStream(path, options);
        if (!OperatingSystem.IsWindows())
        {
            // an existing file keeps its mode on open: narrow it too
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return file;
    }

    /// <summary>A request answered 401 (a missing or wrong credential), rate-limited per source address.</summary>
    public void AuthFailed(HttpContext context, string surface)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_file is null)
        {
            return;
        }

        var source = SourceOf(context);
        if (Admit(source) is not AuditAdmit.Write write)
        {
            return;
        }

        var details = new List<Tuple<string, string>>
        {
            Tuple.Create("surface", surface),
            Tuple.Create("method", context.Request.Method),
            Tuple.Create("path", context.Request.Path.Value ?? ""),
        };
        if (write.SuppressedBefore > 0)
        {
            details.Add(Tuple.Create("suppressed_before", write.SuppressedBefore.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        Write("auth.failed", CredentialOf(context), source, "denied", details);
    }

    /// <summary>A management API call failed its token check.</summary>
    internal void ManagementAuthFailed(string source, string method)
    {
        if (_file is null)
        {
            return;
        }

        if (Admit(source) is AuditAdmit.Write write)
        {
            var details = new List<Tuple<string, string>> { Tuple.Create("surface", "management"), Tuple.Create("method", method) };
            if (write.SuppressedBefore > 0)
            {
                details.Add(Tuple.Create("suppressed_before", write.SuppressedBefore.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }

            Write("auth.failed", "-", source, "denied", details);
        }
    }

    /// <summary>A config reload, applied or refused (its changes or its errors' key paths; never their values).</summary>
    public void ConfigReloaded(ReloadResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var outcome = result.Outcome switch
        {
            ReloadOutcome.Applied => "applied",
            ReloadOutcome.Unchanged => "unchanged",
            _ => "rejected",
        };
        var details = new List<Tuple<string, string>> { Tuple.Create("trigger", result.Trigger) };
        if (result.Outcome == ReloadOutcome.Rejected)
        {
            details.Add(Tuple.Create("errors", string.Join(", ", result.Errors.Select(e => e.Path).Distinct())));
        }
        else if (result.Changes.Count > 0)
        {
            details.Add(Tuple.Create("changes", ConfigDiff.describe(ListModule.OfSeq(result.Changes))));
        }

        Write("config.reload", result.Trigger is "grpc" or "api" ? "operator" : "file", result.Trigger is "grpc" or "api" ? "management" : "local", outcome, details);
    }

    /// <summary>An operator's call of the management API: the method, what it named, how it ended.</summary>
    internal void ManagementCall(string source, string method, IEnumerable<(string Key, string Value)> arguments, string outcome) =>
        Write("management.call", "operator", source, outcome, [Tuple.Create("method", method), .. arguments.Select(a => Tuple.Create(a.Key, a.Value))]);

    /// <summary>A read of <c>/metrics</c> or the detailed <c>/health</c> without the status token.</summary>
    internal void StatusDenied(HttpContext context) =>
        Write("status.denied", CredentialOf(context), SourceOf(context), "denied", [Tuple.Create("path", context.Request.Path.Value ?? "")]);

    /// <summary>
    /// A client key was added, revoked, rotated or changed (for the client keys: the key's id, never the key), with
    /// <paramref name="details"/> such as the replaced key's id and its grace end.
    /// </summary>
    public void ClientKeyChanged(string actor, string source, string client, string keyId, string change, IEnumerable<(string Key, string Value)>? details = null) =>
        Write("client_key.changed", actor, source, "ok", [
            Tuple.Create("client", client), Tuple.Create("key_id", keyId), Tuple.Create("change", change),
            .. (details ?? []).Select(d => Tuple.Create(d.Key, d.Value)),
        ]);

    /// <summary>A request refused because its client is over a budget.</summary>
    public void BudgetBlocked(HttpContext context, string client, string keyId, string budget)
    {
        ArgumentNullException.ThrowIfNull(context);
        Write("budget.blocked", keyId, SourceOf(context), "blocked", [Tuple.Create("client", client), Tuple.Create("budget", budget), Tuple.Create("path", context.Request.Path.Value ?? "")]);
    }

    /// <summary>The limiter's verdict on one authentication failure from <paramref name="source"/>.</summary>
    private AuditAdmit Admit(string source)
    {
        lock (_gate)
        {
            (var admit, _limiter) = AuthFailureLimiterModule.admit(_timeProvider.GetElapsedTime(0), _perMinute, source, _limiter);
            return admit;
        }
    }

    private void Write(string what, string actor, string source, string outcome, IEnumerable<Tuple<string, string>> details)
    {
        if (_file is null)
        {
            return;
        }

        var line = Audit.toJsonLine(_state.Current.Secrets, new AuditEvent(_timeProvider.GetUtcNow(), what, actor, source, outcome, ListModule.OfSeq(details)));
        try
        {
            lock (_gate)
            {
                _file?.Write(line);
                _file?.Flush();
            }
        }
        catch (IOException e)
        {
            // a full disk must not fail the request that was being audited: it is reported instead
            Log.AuditWriteFailed(_logger, e.Message);
        }
    }

    /// <summary>The peer address (the load balancer's when there is one: forwarded headers are not trusted).</summary>
    private static string SourceOf(HttpContext context) => context.Connection.RemoteIpAddress?.ToString() ?? "-";

    /// <summary>The key id of the credential the caller sent (its <c>x-api-key</c>, else its bearer token); <c>-</c> for none.</summary>
    private static string CredentialOf(HttpContext context)
    {
        var apiKey = context.Request.Headers["x-api-key"].ToString();
        if (apiKey.Length > 0)
        {
            return KeyId.ofSecret(apiKey);
        }

        return Headers.tryBearer(context.Request.Headers.Authorization.ToString())?.Value is { Length: > 0 } token ? KeyId.ofSecret(token) : "-";
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            _file?.Dispose();
            _file = null;
        }
    }
}

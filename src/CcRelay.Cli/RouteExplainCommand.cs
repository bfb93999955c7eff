using System.CommandLine;
using System.Text;
using CcRelay.Core;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay route explain [request.json] [--config F] [--json] [--header "Name: value"]…</c>: a dry run of one
/// request against the config (<see cref="RouteExplain.explain"/>): its stage and why, the strategy, the providers in
/// the order they would be tried (the model each would see, the key id, what each would drop) and why every other
/// provider would not be tried. Nothing is sent upstream and no running relay is asked: circuits are taken as
/// closed and keys as full. Exit 0 when some provider would be tried, 1 when none would, 2 for an invalid config,
/// an unreadable or invalid request, or a usage error.
/// </summary>
internal static class RouteExplainCommand
{
    public static Command Create(CliEnvironment environment)
    {
        var request = new Argument<string?>("request")
        {
            Description = "An Anthropic Messages request body (JSON). Default, or '-': read it from stdin.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var config = new Option<string?>("--config", "-c")
        {
            Description = "The config file. Default: the file serve would load, else the built-in default.",
        };
        var json = new Option<bool>("--json") { Description = "Print the explanation as JSON." };
        var header = new Option<string[]>("--header", "-H")
        {
            Description = "A request header, 'Name: value' (repeatable): x-claude-code-agent-id, anthropic-beta, user-agent, x-app matter to stages.",
            AllowMultipleArgumentsPerToken = false,
        };
        var path = new Option<string>("--path")
        {
            Description = "The client path the request arrives at.",
            DefaultValueFactory = _ => "/v1/messages",
        };
        var command = new Command("explain", "Dry run: where a request would go (stage, strategy, providers in order, key id, model sent) and what translation would drop. Nothing is sent.")
        {
            request, config, json, header, path,
        };
        command.SetAction(parse => Run(
            parse.GetValue(request),
            parse.GetValue(config),
            parse.GetValue(json),
            parse.GetValue(header) ?? [],
            parse.GetValue(path) ?? "/v1/messages",
            environment,
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error));
        return command;
    }

    private static int Run(string? requestPath, string? configPath, bool json, string[] headers, string path, CliEnvironment environment, TextWriter output, TextWriter error)
    {
        var loaded = LoadConfig.Run(configPath, environment, error);
        if (loaded is null)
        {
            return ExitCodes.InvalidConfig;
        }

        byte[] body;
        try
        {
            if (requestPath is null or "-")
            {
                using var stdin = Console.OpenStandardInput();
                using var copy = new MemoryStream();
                stdin.CopyTo(copy);
                body = copy.ToArray();
            }
            else
            {
                body = File.ReadAllBytes(environment.FullPath(requestPath));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"cc-relay: cannot read the request: {e.Message}");
            return ExitCodes.InvalidConfig;
        }

        var named = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var h in headers)
        {
            var colon = h.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                error.WriteLine($"cc-relay: --header expects 'Name: value', got '{h}'");
                return ExitCodes.InvalidConfig;
            }

            named[h[..colon].Trim()] = h[(colon + 1)..].Trim();
        }

        string Header(string name) => named.TryGetValue(name, out var value) ? value : "";
        var betas = Header("anthropic-beta").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var stageHeaders = Stages.headersOf(Header("x-claude-code-agent-id"), Header("anthropic-beta"), Header("user-agent"), Header("x-app"));

        var explained = RouteExplain.explain(loaded.Value.Config, TimeSpan.Zero, body, stageHeaders, betas, path);
        if (explained.IsError)
        {
            error.WriteLine($"cc-relay: the request would be refused: {explained.ErrorValue}");
            return ExitCodes.InvalidConfig;
        }

        var explanation = explained.ResultValue;
        if (json)
        {
            output.WriteLine(Encoding.UTF8.GetString(RouteExplain.toJson(explanation)));
        }
        else
        {
            output.Write(RouteExplain.toText(explanation));
        }

        return RouteExplain.routable(explanation) ? ExitCodes.Success : ExitCodes.Failure;
    }
}

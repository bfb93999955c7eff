using CcRelay.Core;
using CcRelay.Host;
using CcRelay.Host.Configuration;

// An ASP.NET Core application with endpoints of its own that also serves CcRelay: Claude Code (or any client of the
// Anthropic Messages API) points its base URL at this app and is relayed to the configured providers.
var builder = WebApplication.CreateBuilder(args);

// The relay's config: the same YAML or TOML file `cc-relay serve` reads, named by $CC_RELAY_CONFIG here; without one
// the relay is a passthrough to Anthropic. Its server.listen is not used: this app's own Kestrel settings
// (--urls, ASPNETCORE_URLS) decide where it listens.
var configPath = Environment.GetEnvironmentVariable("CC_RELAY_CONFIG");
var config = CcRelay.Core.Config.defaults;
if (!string.IsNullOrEmpty(configPath))
{
    switch (ConfigFile.Load(configPath, Environment.GetEnvironmentVariable))
    {
        case ConfigLoad.Loaded loaded:
            config = loaded.Config;
            break;
        case ConfigLoad.Invalid invalid:
            Console.Error.WriteLine($"invalid relay configuration in {configPath}:");
            foreach (var error in invalid.Errors)
            {
                Console.Error.WriteLine($"  error: {error}");
            }

            return 2;
    }
}

builder.Services.AddCcRelay(relay =>
{
    relay.Config = config;
    relay.ConfigPath = configPath; // reloaded when the file changes
});

var app = builder.Build();

// The application's own endpoint, beside the relay's.
app.MapGet("/hello", () => $"Hello from an app that embeds CcRelay {RelayInfo.Version}");

// /v1/messages, /v1/messages/count_tokens, /v1/models, the Bedrock and Vertex AI shaped routes, / and /health.
// Without notFoundFallback every other path stays the application's.
app.MapCcRelay();

app.Run();
return 0;

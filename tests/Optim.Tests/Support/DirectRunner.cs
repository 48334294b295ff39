using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Threading.Tasks;
using Xunit.Sdk;

namespace Optim.Tests.Support;

/// <summary>
/// Runs this assembly's facts and theories whose full name contains one of the filters, in this process, without a test
/// host: <c>dotnet Optim.Tests.dll run Cuda</c>. It is how the CUDA tests run on a machine that has a GPU and the .NET
/// runtime but no SDK (so no <c>dotnet test</c>). Facts whose <c>Skip</c> is set (a <see cref="CudaFactAttribute"/>
/// without a GPU) are reported as skipped; test classes take no constructor argument but xunit's output helper.
/// </summary>
internal static class DirectRunner
{
    /// <summary>Runs the tests of <paramref name="types"/> (default: this assembly's public classes) that the filters name; 0 when all passed.</summary>
    public static int Run(IReadOnlyList<string> filters, TextWriter log, IEnumerable<Type>? types = null)
    {
        int passed = 0, failed = 0, skipped = 0;
        var tests = (types ?? typeof(DirectRunner).Assembly.GetTypes().Where(t => t.IsPublic || t.IsNestedPublic))
            .Where(t => t.IsClass && !t.IsAbstract)
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static).Select(m => (Type: t, Method: m)))
            .Where(e => e.Method.GetCustomAttribute<FactAttribute>() is not null)
            .Where(e => filters.Any(f => $"{e.Type.FullName}.{e.Method.Name}".Contains(f, StringComparison.OrdinalIgnoreCase)))
            .OrderBy(e => e.Type.FullName, StringComparer.Ordinal).ThenBy(e => e.Method.Name, StringComparer.Ordinal);
        foreach (var (type, method) in tests)
        {
            var name = $"{type.FullName}.{method.Name}";
            var fact = method.GetCustomAttribute<FactAttribute>()!;
            if (fact.Skip is not null)
            {
                skipped++;
                log.WriteLine($"SKIP {name}: {fact.Skip}");
                continue;
            }
            var rows = fact is TheoryAttribute
                ? method.GetCustomAttributes<DataAttribute>().SelectMany(d => d.GetData(method)).ToList()
                : new List<object[]> { Array.Empty<object>() };
            foreach (var row in rows)
            {
                var label = row.Length == 0 ? name : $"{name}({string.Join(", ", row)})";
                var clock = Stopwatch.StartNew();
                try
                {
                    Invoke(type, method, row);
                    passed++;
                    log.WriteLine($"PASS {label} ({clock.Elapsed.TotalSeconds:F1} s)");
                }
                catch (Exception e)
                {
                    failed++;
                    var cause = e is TargetInvocationException { InnerException: { } inner } ? inner : e;
                    log.WriteLine($"FAIL {label} ({clock.Elapsed.TotalSeconds:F1} s): {cause}");
                }
            }
        }
        log.WriteLine($"{passed} passed, {failed} failed, {skipped} skipped");
        return failed == 0 && passed > 0 ? 0 : 1;
    }

    private static void Invoke(Type type, MethodInfo method, object[] row)
    {
        // xunit's ITestOutputHelper is the one constructor argument the tests take.
        var instance = method.IsStatic ? null
            : type.GetConstructor(Type.EmptyTypes) is not null ? Activator.CreateInstance(type)
            : Activator.CreateInstance(type, new ConsoleOutput());
        try
        {
            if (method.Invoke(instance, row) is Task task) task.GetAwaiter().GetResult();
        }
        finally
        {
            (instance as IDisposable)?.Dispose();
        }
    }

    private sealed class ConsoleOutput : Xunit.Abstractions.ITestOutputHelper
    {
        public void WriteLine(string message) => Console.WriteLine(message);

        public void WriteLine(string format, params object[] args) => Console.WriteLine(format, args);
    }
}

using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Reflection.Emit;
using TorchSharp;
using static TorchSharp.torch;

namespace Optim.Tests.Reliability;

/// <summary>
/// Reads the compiled library's IL: no TorchSharp <see cref="Scalar"/> may be made where nothing keeps it alive through
/// the native call it is passed to (see <c>Optim.Kernels.Scalars</c>). A Scalar is made by C#'s implicit conversion
/// (<c>t.mul_(0.9)</c>), by <c>ToScalar()</c>, or inside a TorchSharp overload (<c>add_(t)</c> makes its alpha 1);
/// only <c>Scalars.S</c> (and the TorchScript bridge, which keeps its arguments) may make one. The crash this guards
/// against needs a garbage collection at the wrong microsecond (<see cref="GcStressTests"/> provokes it); this test
/// finds the pattern whether or not the collection happens.
/// </summary>
public class ScalarLifetimeTests
{
    // Where a Scalar may be made: the keeper, and the TorchScript bridge's S, whose Scalars stay in the argument array
    // until the call returns and are then disposed.
    private static bool IsKeeper(Type type, MethodBase method) =>
        type.FullName == "Optim.Kernels.Scalars" || type.FullName == "Optim.Kernels.Aten" && method.Name == "S";

    // TorchSharp methods that make Scalars inside but are safe as we call them: CompilationUnit.invoke turns double and
    // long arguments into Scalars it does not keep, and the bridge (Aten) passes it only Scalars from its S, ints,
    // bools and tensors.
    private static bool IsSafe(MethodBase callee) => callee.DeclaringType?.Name == "CompilationUnit" && callee.Name == "invoke";

    [Fact]
    public void The_library_makes_every_Scalar_through_the_keeper()
    {
        var findings = Unkept(typeof(Optimizer).Assembly);
        string.Join(Environment.NewLine, findings).Should().BeEmpty("every Scalar argument must come from Scalars.S or Scalars.One, alive until the op returns");
    }

    [Fact]
    public void The_check_finds_unkept_Scalars()
    {
        // The check run on this test class's own canaries: each pattern must be reported.
        var findings = Unkept(typeof(ScalarLifetimeTests).Assembly).Where(f => f.Contains(nameof(Canaries), StringComparison.Ordinal)).ToList();
        findings.Should().Contain(f => f.Contains("ImplicitDouble", StringComparison.Ordinal) && f.Contains("op_Implicit", StringComparison.Ordinal));
        findings.Should().Contain(f => f.Contains("AlphaInside", StringComparison.Ordinal) && f.Contains("add_", StringComparison.Ordinal));
        findings.Should().Contain(f => f.Contains("OrdInside", StringComparison.Ordinal) && f.Contains("vector_norm", StringComparison.Ordinal));
        findings.Should().Contain(f => f.Contains("OperatorInside", StringComparison.Ordinal) && f.Contains("op_Addition", StringComparison.Ordinal));
        findings.Should().NotContain(f => f.Contains("Kept", StringComparison.Ordinal));
    }

    // Never run: read by The_check_finds_unkept_Scalars.
    private static class Canaries
    {
        public static Tensor ImplicitDouble(Tensor t) => t.mul_(0.5);

        public static Tensor AlphaInside(Tensor t, Tensor u) => t.add_(u);

        public static Tensor OrdInside(Tensor t) => linalg.vector_norm(t, 2);

        public static Tensor OperatorInside(Tensor t, Tensor u) => t + u;

        public static Tensor Kept(Tensor t, Tensor u) => t.add_(u, Optim.Kernels.Scalars.S(0.5));
    }

    /// <summary>Every call in <paramref name="assembly"/> that makes a Scalar nothing keeps alive, as "caller: callee".</summary>
    private static List<string> Unkept(Assembly assembly)
    {
        var makers = new Dictionary<MethodBase, bool>();
        var findings = new List<string>();
        foreach (var type in assembly.GetTypes())
        {
            foreach (var method in Methods(type))
            {
                var caller = $"{type.FullName}::{method.Name}";
                if (IsKeeper(type, method)) continue;
                foreach (var callee in Calls(method))
                {
                    if (MakesScalar(callee) || callee.DeclaringType?.Assembly == typeof(Scalar).Assembly && !IsSafe(callee) && MakesInside(callee, makers, 0))
                        findings.Add($"{caller}: {callee.DeclaringType?.FullName}::{callee.Name}({string.Join(", ", callee.GetParameters().Select(p => p.ParameterType.Name))})");
                }
            }
        }
        return findings;
    }

    private static bool MakesScalar(MethodBase m) =>
        m.DeclaringType == typeof(Scalar) && m.Name == "op_Implicit"
        || m.DeclaringType == typeof(ScalarExtensionMethods) && m.Name == nameof(ScalarExtensionMethods.ToScalar);

    // Whether a TorchSharp method makes a Scalar, itself or through the TorchSharp methods it calls.
    private static bool MakesInside(MethodBase method, Dictionary<MethodBase, bool> known, int depth)
    {
        if (known.TryGetValue(method, out var makes)) return makes;
        if (depth > 6 || method.DeclaringType == typeof(Scalar) || method.DeclaringType == typeof(ScalarExtensionMethods)) return false;
        known[method] = false; // recursion guard
        makes = Calls(method).Any(c => MakesScalar(c)
            || c.DeclaringType?.Assembly == typeof(Scalar).Assembly && MakesInside(c, known, depth + 1));
        known[method] = makes;
        return makes;
    }

    private static IEnumerable<MethodBase> Methods(Type type)
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        return type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all));
    }

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    // The methods a method body calls (call, callvirt, newobj, ldftn), read from its IL.
    private static IEnumerable<MethodBase> Calls(MethodBase method)
    {
        byte[]? il;
        try
        {
            il = method.GetMethodBody()?.GetILAsByteArray();
        }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException)
        {
            il = null;
        }
        if (il is null) yield break;
        var typeArgs = method.DeclaringType is { IsGenericType: true } t ? t.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (var i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            i += il[i] == 0xFE ? 2 : 1;
            var op = OpCodesByValue[value];
            var operand = i;
            i += op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                _ => 4,
            };
            if (op.OperandType != OperandType.InlineMethod) continue;
            MethodBase? callee;
            try
            {
                callee = method.Module.ResolveMethod(BitConverter.ToInt32(il, operand), typeArgs, methodArgs);
            }
            catch (ArgumentException)
            {
                callee = null;
            }
            if (callee is not null) yield return callee;
        }
    }
}

namespace Optim;

/// <summary>PyTorch's per-parameter state keys, as its state dicts spell them.</summary>
internal static class StateKeys
{
    public const string Step = "step";
    public const string ExpAvg = "exp_avg";
    public const string ExpAvgSq = "exp_avg_sq";
    public const string MaxExpAvgSq = "max_exp_avg_sq";
    public const string MomentumBuffer = "momentum_buffer";
    public const string SquareAvg = "square_avg";
    public const string GradAvg = "grad_avg";
    public const string Sum = "sum";
    public const string AccDelta = "acc_delta";
    public const string ExpInf = "exp_inf";
    public const string Eta = "eta";
    public const string Mu = "mu";
    public const string Ax = "ax";
    public const string MuProduct = "mu_product";
    public const string Prev = "prev";
    public const string StepSize = "step_size";
}

"""Brute-force references for the closed forms: dense covariances, no Woodbury, no coordinates."""

import math

import torch


def dense_posterior_mean(mix, x_t, sigma):
    """E[x0 | x_t] of a Gaussian mixture from dense n x n covariances (float64).

    Returns ``(x_hat, w)`` with ``w`` the ``(B, K)`` posterior class probabilities.
    """
    x_t = x_t.to(torch.float64)
    sigma = torch.as_tensor(sigma, dtype=torch.float64).expand(x_t.shape[0])
    eye = torch.eye(mix.n, dtype=torch.float64)
    log_post, cond_means = [], []
    for k in range(mix.K):
        S = mix.covariance(k)
        mu = mix.means[k]
        rows, logp = [], []
        for b in range(x_t.shape[0]):
            C = S + sigma[b] ** 2 * eye
            r = x_t[b] - mu
            sol = torch.linalg.solve(C, r)
            logdet = torch.linalg.slogdet(C).logabsdet
            logp.append(
                math.log(mix.pi[k]) - 0.5 * (r @ sol + logdet + mix.n * math.log(2 * math.pi))
            )
            rows.append(mu + S @ sol)
        log_post.append(torch.stack(logp))
        cond_means.append(torch.stack(rows))
    w = torch.softmax(torch.stack(log_post, 1), 1)
    return torch.einsum("bk,kbn->bn", w, torch.stack(cond_means)), w

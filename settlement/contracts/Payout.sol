// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title The payout formula of pay-by-completion (docs/settlement.md).
/// @notice One definition, implemented twice: here and in `settlement/formula.py`. A property
/// test holds the two equal to the wei. All integers; bps = 1/10,000; times are milliseconds of
/// the collector's clock (the money clock), so a tranche edge is exact.
library Payout {
    uint256 internal constant BPS = 10_000;

    /// @dev A completion received within `withinS` seconds of enrollment earns `bps`.
    struct Tranche {
        uint32 withinS;
        uint16 bps;
    }

    /// @dev Everything the formula reads: the pinned terms and one outcome.
    struct Case {
        Tranche[] tranches;
        bool linear;
        uint16 minScoreBps;
        uint16 creatorShareBps;
        uint256 deposit;
        uint48 enrolledAtMs;
        uint48 deadlineMs;
        bool complete;
        uint48 completedAtMs;
        uint16 scoreBps;
    }

    /// @notice The bps of the first tranche with t <= within, 0 after the last.
    function trancheBps(Tranche[] memory tranches, uint256 tMs) internal pure returns (uint256) {
        for (uint256 i; i < tranches.length; ++i) {
            if (tMs <= uint256(tranches[i].withinS) * 1000) return tranches[i].bps;
        }
        return 0;
    }

    /// @notice Whether a completion counts: received by the deadline (inclusive).
    function counts(bool complete, uint48 completedAtMs, uint48 deadlineMs) internal pure returns (bool) {
        return complete && completedAtMs <= deadlineMs;
    }

    /// @notice earned_bps: the tranche of a counted completion, else the linear partial payout
    /// when the score reaches the minimum, else 0.
    function earnedBps(Case memory c) internal pure returns (uint256) {
        if (counts(c.complete, c.completedAtMs, c.deadlineMs)) {
            uint256 t = c.completedAtMs > c.enrolledAtMs ? c.completedAtMs - c.enrolledAtMs : 0;
            return trancheBps(c.tranches, t);
        }
        if (c.linear && c.scoreBps >= c.minScoreBps) return c.scoreBps;
        return 0;
    }

    /// @notice The split of a deposit: creator + platform + learner == deposit exactly, and
    /// every rounding favours the learner.
    function split(uint256 deposit, uint256 earned, uint256 creatorShareBps)
        internal
        pure
        returns (uint256 creator, uint256 platform, uint256 learner)
    {
        // Two floors on purpose (the formula's definition): payable is itself paid out, and the
        // creator gets a share of it; one product would break creator + platform == payable.
        uint256 payable_ = deposit * earned / BPS;
        // slither-disable-next-line divide-before-multiply
        creator = payable_ * creatorShareBps / BPS;
        platform = payable_ - creator;
        learner = deposit - payable_;
    }
}

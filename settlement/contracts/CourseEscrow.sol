// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {Payout} from "./Payout.sol";

/// @title CourseEscrow: pay-by-completion escrow of learnstream (docs/settlement.md).
/// @notice A learner's course fee is held per enrollment. The oracle (the settlement service)
/// settles it once, by the payout formula and the terms pinned at deposit: the creator and the
/// platform are credited what was earned, the learner the rest. If the oracle never acts,
/// anyone may `expire` an escrow after its deadline plus grace, which refunds it in full.
/// Payouts are pull payments (`withdraw`, `withdrawFor`). Pause stops deposits and
/// settlement, never withdrawals or expiry. Every movement of money emits an event carrying
/// the enrollment key (or the payee, for withdrawals), the asset and the amounts, so every
/// balance can be rebuilt from logs alone.
/// @dev OpenZeppelin 5 removed Escrow/RefundEscrow/PullPayment; this follows their spirit with
/// explicit states, written here because no maintained library offers a multi-asset,
/// per-enrollment escrow with pinned payout terms.
contract CourseEscrow is AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant ORACLE_ROLE = keccak256("ORACLE_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice The asset code of ether.
    address public constant ETH = address(0);
    /// @notice Deposits above this cannot overflow the formula (deposit * 10,000 < 2^256).
    uint256 public constant MAX_DEPOSIT = 2 ** 200;
    uint8 public constant METRIC_COMPLETION = 0;
    uint8 public constant METRIC_EXAM = 1;

    enum State {
        None,
        Open,
        Settled,
        Expired
    }

    /// @notice Why a settlement in a batch changed nothing.
    uint8 public constant SKIP_NOT_OPEN = 1;
    uint8 public constant SKIP_NOT_DUE = 2;
    uint8 public constant SKIP_BAD_SCORE = 3;

    /// @notice A course's payout terms, immutable once registered; a deposit pins one.
    struct Terms {
        address creator;
        uint16 creatorShareBps;
        uint16 minScoreBps;
        bool linear;
        uint8 metric;
        uint32 graceS;
        uint32 maxDeadlineS;
        Payout.Tranche[] tranches;
    }

    struct Escrow {
        address asset;
        uint32 termsId;
        State state;
        uint48 deadlineMs;
        address refundTo;
        uint48 enrolledAtMs;
        uint256 amount;
    }

    struct DepositInput {
        bytes32 key;
        bytes32 course;
        address asset;
        uint256 amount;
        address refundTo;
        uint48 enrolledAtMs;
        uint48 deadlineMs;
    }

    /// @notice The oracle's word on one enrollment: `scoreBps` is the policy's metric, and
    /// `complete` whether its rule held, at `completedAtMs` (the collector's clock).
    struct Outcome {
        bytes32 key;
        bool complete;
        uint48 completedAtMs;
        uint16 scoreBps;
    }

    address public treasury;
    uint32 public termsCount;
    mapping(uint32 termsId => Terms) private _terms;
    mapping(uint32 termsId => bytes32) public termsHash;
    mapping(bytes32 course => uint32 termsId) public courseTerms;
    mapping(address asset => bool) public assetAllowed;
    mapping(bytes32 key => Escrow) private _escrows;
    mapping(address asset => mapping(address payee => uint256)) private _credit;

    event TreasuryChanged(address indexed previous, address indexed current);
    event AssetAllowed(address indexed asset, bool allowed);
    event CourseRegistered(
        bytes32 indexed course, uint32 indexed termsId, address creator, uint16 creatorShareBps, bytes32 termsHash
    );
    event Deposited(
        bytes32 indexed key,
        bytes32 indexed course,
        address indexed asset,
        uint32 termsId,
        uint256 amount,
        address refundTo,
        uint48 enrolledAtMs,
        uint48 deadlineMs
    );
    event Settled(
        bytes32 indexed key,
        address indexed asset,
        uint8 metric,
        bool counted,
        uint16 scoreBps,
        uint256 earnedBps,
        uint256 creatorAmount,
        uint256 platformAmount,
        uint256 learnerAmount
    );
    event SettlementSkipped(bytes32 indexed key, uint8 reason);
    event Expired(bytes32 indexed key, address indexed asset, uint256 learnerAmount);
    event Withdrawn(address indexed payee, address indexed asset, uint256 amount);

    error ZeroAddress();
    error InvalidTerms(string why);
    error UnknownCourse(bytes32 course);
    error AssetNotAllowed(address asset);
    error AlreadyDeposited(bytes32 key);
    error InvalidAmount(bytes32 key, uint256 amount);
    error InvalidDeadline(bytes32 key, uint48 enrolledAtMs, uint48 deadlineMs);
    error EthMismatch(uint256 sent, uint256 expected);
    error UnsupportedToken(address asset);
    error NotOpen(bytes32 key, State state);
    error NotExpirable(bytes32 key, uint256 opensAtMs);
    error NothingToWithdraw(address payee, address asset);
    error ScoreOutOfRange(uint16 scoreBps);

    constructor(address admin, address oracle, address pauser, address treasury_) {
        if (admin == address(0) || oracle == address(0) || pauser == address(0) || treasury_ == address(0)) {
            revert ZeroAddress();
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ORACLE_ROLE, oracle);
        _grantRole(PAUSER_ROLE, pauser);
        treasury = treasury_;
        assetAllowed[ETH] = true;
        emit TreasuryChanged(address(0), treasury_);
        emit AssetAllowed(ETH, true);
    }

    // ---- administration -------------------------------------------------------------------

    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert ZeroAddress();
        emit TreasuryChanged(treasury, treasury_);
        treasury = treasury_;
    }

    /// @notice Which ERC-20 tokens deposits may use (ether always). Fee-on-transfer tokens are
    /// refused at deposit whatever this says.
    function setAssetAllowed(address asset, bool allowed) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (asset == ETH) revert InvalidTerms("ether is always allowed");
        assetAllowed[asset] = allowed;
        emit AssetAllowed(asset, allowed);
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @notice Registers a course's current terms. Registering the same terms again is a no-op
    /// that returns the id in force, so a replayed catalogue record sends nothing that reverts.
    function registerCourse(bytes32 course, Terms calldata terms) external onlyRole(ORACLE_ROLE) returns (uint32) {
        _validate(terms);
        bytes32 h = keccak256(abi.encode(terms));
        uint32 current = courseTerms[course];
        if (current != 0 && termsHash[current] == h) return current;
        uint32 id = ++termsCount;
        Terms storage t = _terms[id];
        t.creator = terms.creator;
        t.creatorShareBps = terms.creatorShareBps;
        t.minScoreBps = terms.minScoreBps;
        t.linear = terms.linear;
        t.metric = terms.metric;
        t.graceS = terms.graceS;
        t.maxDeadlineS = terms.maxDeadlineS;
        for (uint256 i; i < terms.tranches.length; ++i) {
            t.tranches.push(terms.tranches[i]);
        }
        termsHash[id] = h;
        courseTerms[course] = id;
        emit CourseRegistered(course, id, terms.creator, terms.creatorShareBps, h);
        return id;
    }

    // ---- money in -------------------------------------------------------------------------

    /// @notice Escrows a batch of enrollments, each under its course's terms in force now.
    /// Ether deposits must add up to `msg.value`; tokens are pulled from the caller.
    function deposit(DepositInput[] calldata batch) external payable onlyRole(ORACLE_ROLE) whenNotPaused nonReentrant {
        uint256 eth = 0;
        for (uint256 i; i < batch.length; ++i) {
            DepositInput calldata d = batch[i];
            uint32 termsId = _checkDeposit(d);
            _escrows[d.key] = Escrow({
                asset: d.asset,
                termsId: termsId,
                state: State.Open,
                deadlineMs: d.deadlineMs,
                refundTo: d.refundTo,
                enrolledAtMs: d.enrolledAtMs,
                amount: d.amount
            });
            emit Deposited(d.key, d.course, d.asset, termsId, d.amount, d.refundTo, d.enrolledAtMs, d.deadlineMs);
            if (d.asset == ETH) {
                eth += d.amount;
            } else {
                _pull(IERC20(d.asset), d.amount);
            }
        }
        if (msg.value != eth) revert EthMismatch(msg.value, eth);
    }

    // ---- money out ------------------------------------------------------------------------

    /// @notice Settles a batch, each enrollment at most once. An entry that cannot settle (not
    /// open, not yet due, score out of range) changes nothing and emits `SettlementSkipped`,
    /// so one stale entry never blocks the rest of the batch.
    function settle(Outcome[] calldata batch) external onlyRole(ORACLE_ROLE) whenNotPaused nonReentrant {
        address treasury_ = treasury;
        uint256 nowMs = block.timestamp * 1000;
        for (uint256 i; i < batch.length; ++i) {
            Outcome calldata o = batch[i];
            Escrow storage e = _escrows[o.key];
            uint8 skip = _skipReason(e, o, nowMs);
            if (skip != 0) {
                emit SettlementSkipped(o.key, skip);
                continue;
            }
            e.state = State.Settled;
            _settleOne(o, e, treasury_);
        }
    }

    /// @notice Refunds an escrow in full once its deadline plus grace has passed and the oracle
    /// has not settled it. Anyone may call it; it is never paused.
    function expire(bytes32 key) external nonReentrant {
        Escrow storage e = _escrows[key];
        if (e.state != State.Open) revert NotOpen(key, e.state);
        uint256 opensAtMs = uint256(e.deadlineMs) + uint256(_terms[e.termsId].graceS) * 1000;
        if (block.timestamp * 1000 < opensAtMs) revert NotExpirable(key, opensAtMs);
        e.state = State.Expired;
        _credit[e.asset][e.refundTo] += e.amount;
        emit Expired(key, e.asset, e.amount);
    }

    /// @notice Pays the caller everything credited to it in `asset`.
    function withdraw(address asset) external nonReentrant {
        _withdraw(msg.sender, asset);
    }

    /// @notice Pays `payee` (and only `payee`) its credit in `asset`; anyone may call it, so a
    /// learner needs no gas to be refunded.
    function withdrawFor(address payee, address asset) external nonReentrant {
        _withdraw(payee, asset);
    }

    // ---- views ----------------------------------------------------------------------------

    function escrowOf(bytes32 key) external view returns (Escrow memory) {
        return _escrows[key];
    }

    /// @notice The states of many escrows in one call (the oracle reads them before it sends).
    function statesOf(bytes32[] calldata keys) external view returns (State[] memory states) {
        states = new State[](keys.length);
        for (uint256 i; i < keys.length; ++i) {
            states[i] = _escrows[keys[i]].state;
        }
    }

    function termsOf(uint32 termsId) external view returns (Terms memory) {
        return _terms[termsId];
    }

    function creditOf(address asset, address payee) external view returns (uint256) {
        return _credit[asset][payee];
    }

    /// @notice The formula alone, for previews and for the property test against Python.
    function quote(Payout.Case calldata c)
        external
        pure
        returns (uint256 earned, uint256 creator, uint256 platform, uint256 learner)
    {
        if (c.scoreBps > Payout.BPS) revert ScoreOutOfRange(c.scoreBps);
        earned = Payout.earnedBps(c);
        (creator, platform, learner) = Payout.split(c.deposit, earned, c.creatorShareBps);
    }

    // ---- internals ------------------------------------------------------------------------

    function _validate(Terms calldata t) private pure {
        if (t.creator == address(0)) revert ZeroAddress();
        if (t.creatorShareBps > Payout.BPS || t.minScoreBps > Payout.BPS) revert InvalidTerms("bps above 10000");
        if (t.metric > METRIC_EXAM) revert InvalidTerms("unknown metric");
        if (t.graceS == 0 || t.maxDeadlineS == 0) revert InvalidTerms("grace and deadline must be positive");
        uint256 n = t.tranches.length;
        if (n == 0) revert InvalidTerms("no tranches");
        for (uint256 i; i < n; ++i) {
            if (t.tranches[i].bps > Payout.BPS) revert InvalidTerms("tranche bps above 10000");
            if (i > 0 && t.tranches[i].withinS <= t.tranches[i - 1].withinS) {
                revert InvalidTerms("tranches not strictly ascending");
            }
        }
        if (t.tranches[n - 1].withinS < t.maxDeadlineS) revert InvalidTerms("tranches do not cover the deadline");
    }

    function _checkDeposit(DepositInput calldata d) private view returns (uint32 termsId) {
        if (_escrows[d.key].state != State.None) revert AlreadyDeposited(d.key);
        termsId = courseTerms[d.course];
        if (termsId == 0) revert UnknownCourse(d.course);
        if (!assetAllowed[d.asset]) revert AssetNotAllowed(d.asset);
        if (d.amount == 0 || d.amount > MAX_DEPOSIT) revert InvalidAmount(d.key, d.amount);
        if (d.refundTo == address(0)) revert ZeroAddress();
        if (d.deadlineMs <= d.enrolledAtMs || d.deadlineMs - d.enrolledAtMs > uint256(_terms[termsId].maxDeadlineS) * 1000)
        {
            revert InvalidDeadline(d.key, d.enrolledAtMs, d.deadlineMs);
        }
    }

    function _pull(IERC20 token, uint256 amount) private {
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        if (token.balanceOf(address(this)) - before != amount) revert UnsupportedToken(address(token));
    }

    function _skipReason(Escrow storage e, Outcome calldata o, uint256 nowMs) private view returns (uint8) {
        if (e.state != State.Open) return SKIP_NOT_OPEN;
        if (o.scoreBps > Payout.BPS) return SKIP_BAD_SCORE;
        // Without a counted completion an escrow settles only once its deadline has passed.
        if (!Payout.counts(o.complete, o.completedAtMs, e.deadlineMs) && nowMs < e.deadlineMs) return SKIP_NOT_DUE;
        return 0;
    }

    function _settleOne(Outcome calldata o, Escrow storage e, address treasury_) private {
        Terms storage t = _terms[e.termsId];
        Payout.Case memory c = Payout.Case({
            tranches: t.tranches,
            linear: t.linear,
            minScoreBps: t.minScoreBps,
            creatorShareBps: t.creatorShareBps,
            deposit: e.amount,
            enrolledAtMs: e.enrolledAtMs,
            deadlineMs: e.deadlineMs,
            complete: o.complete,
            completedAtMs: o.completedAtMs,
            scoreBps: o.scoreBps
        });
        uint256 earned = Payout.earnedBps(c);
        (uint256 creator, uint256 platform, uint256 learner) = Payout.split(c.deposit, earned, c.creatorShareBps);
        address asset = e.asset;
        emit Settled(
            o.key,
            asset,
            t.metric,
            Payout.counts(o.complete, o.completedAtMs, c.deadlineMs),
            o.scoreBps,
            earned,
            creator,
            platform,
            learner
        );
        // Payees are known from logs too: the creator from CourseRegistered (pinned by
        // Deposited.termsId), the treasury from TreasuryChanged, the learner from Deposited.
        if (creator != 0) _credit[asset][t.creator] += creator;
        if (platform != 0) _credit[asset][treasury_] += platform;
        if (learner != 0) _credit[asset][e.refundTo] += learner;
    }

    function _withdraw(address payee, address asset) private {
        uint256 amount = _credit[asset][payee];
        if (amount == 0) revert NothingToWithdraw(payee, asset);
        _credit[asset][payee] = 0;
        emit Withdrawn(payee, asset, amount);
        if (asset == ETH) {
            Address.sendValue(payable(payee), amount);
        } else {
            IERC20(asset).safeTransfer(payee, amount);
        }
    }
}

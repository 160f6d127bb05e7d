// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CourseEscrow} from "learnstream/CourseEscrow.sol";
import {Payout} from "learnstream/Payout.sol";
import {TestStablecoin} from "learnstream/TestStablecoin.sol";
import {ReentrantPayee, IWithdraw} from "learnstream/test/ReentrantPayee.sol";
import {VM, Vm, check, checkEq, checkLe} from "./Forge.sol";

/// @notice Drives one CourseEscrow through random sequences of register / deposit / settle /
/// expire / withdraw / withdrawFor / pause / unpause / setTreasury / warp, in ether and in the
/// 6-decimal TestStablecoin, and keeps ghost books of every movement of money.
/// @dev It holds every role (admin, oracle, pauser). Inputs are bounded so that nearly every call
/// changes the escrow; the calls that must revert (a paused deposit, a second expiry, a duplicate
/// key, withdrawing nothing) are made on purpose, inside try/catch, and checked to revert with
/// the expected error. Anything unexpected reverts the handler, and the invariant config sets
/// `fail_on_revert`, so a surprise fails the run with its message.
contract EscrowHandler {
    Vm internal constant vm = VM;
    address internal constant ETH = address(0);
    uint256 internal constant START = 1_780_000_000; // seconds, 2026-05

    CourseEscrow public immutable escrow;
    TestStablecoin public immutable token;
    ReentrantPayee public immutable reentrantPayee;

    address[] internal _creators;
    address[] internal _learners;
    address[] internal _treasuries;
    address[] internal _payees; // every address the escrow can ever credit
    address internal _stranger;

    bytes32[] internal _courses;
    uint256 public currentTime; // forge may not carry vm.warp from one call to the next

    struct Ghost {
        address asset;
        uint32 termsId;
        CourseEscrow.State state;
        uint48 enrolledAtMs;
        uint48 deadlineMs;
        address refundTo;
        uint256 amount;
        uint256 credited; // what its Settled / Expired event paid out
    }

    bytes32[] internal _keys;
    mapping(bytes32 key => Ghost) internal _ghost;

    mapping(address asset => uint256) public deposited;
    mapping(address asset => uint256) public withdrawn;
    mapping(address asset => uint256) public openAmount; // deposits still in open escrows
    mapping(address asset => mapping(address payee => uint256)) public creditedTo;
    mapping(address asset => mapping(address payee => uint256)) public withdrawnBy;

    /// @notice How often each action did what it is for (and each planned revert happened).
    mapping(string action => uint256) public done;

    constructor() {
        escrow = new CourseEscrow(address(this), address(this), address(this), _addr("treasury-0"));
        token = new TestStablecoin();
        reentrantPayee = new ReentrantPayee(IWithdraw(address(escrow)));
        escrow.setAssetAllowed(address(token), true);
        token.approve(address(escrow), type(uint256).max);
        for (uint256 i; i < 3; ++i) {
            _creators.push(_addr(string.concat("creator-", _digit(i))));
            _learners.push(_addr(string.concat("learner-", _digit(i))));
        }
        _learners.push(address(reentrantPayee));
        _treasuries.push(_addr("treasury-0"));
        _treasuries.push(_addr("treasury-1"));
        for (uint256 i; i < _creators.length; ++i) {
            _payees.push(_creators[i]);
        }
        for (uint256 i; i < _learners.length; ++i) {
            _payees.push(_learners[i]);
        }
        for (uint256 i; i < _treasuries.length; ++i) {
            _payees.push(_treasuries[i]);
        }
        _stranger = _addr("stranger");
        vm.label(address(escrow), "CourseEscrow");
        vm.label(address(token), "tUSD");
        vm.label(address(reentrantPayee), "ReentrantPayee");
        currentTime = START;
        vm.warp(START);
        _registerNew(uint256(keccak256("first course")));
    }

    // ---- actions (the fuzzer's targets) ------------------------------------------------------

    /// @notice A new course, new terms for a known course, or the same terms again (a no-op).
    function register(uint256 seed) external {
        _sync();
        uint256 mode = seed % 4;
        if (mode == 0 || _courses.length >= 6) {
            bytes32 course = _courses[(seed >> 8) % _courses.length];
            uint32 id = escrow.courseTerms(course);
            uint32 count = escrow.termsCount();
            if (mode == 0) {
                checkEq(escrow.registerCourse(course, escrow.termsOf(id)), id, "same terms: same id");
                checkEq(escrow.termsCount(), count, "same terms: nothing new");
                done["register.same"] += 1;
            } else {
                CourseEscrow.Terms memory t = _terms(seed);
                bool same = keccak256(abi.encode(t)) == escrow.termsHash(id);
                checkEq(escrow.registerCourse(course, t), same ? id : count + 1, "new terms: next id");
                done["register.newTerms"] += 1;
            }
            return;
        }
        _registerNew(seed);
    }

    /// @notice A batch of 1-3 deposits, each in ether or tUSD. One in 16 repeats a key and must
    /// revert as a whole; while paused one in 3 must revert, the others unpause first.
    function deposit(uint256 seed, uint256 amount, uint256 count) external {
        _sync();
        _deposit(seed, amount, count);
    }

    /// @notice A batch of 1-4 outcomes over open keys, settled or expired keys, unknown keys and
    /// the same key twice, with random completion times and scores (some above 10,000).
    function settle(uint256 seed, uint256 count) external {
        _sync();
        if (_keys.length == 0) _deposit(seed, seed >> 128, count);
        if (_keys.length == 0) return; // paused, and this deposit checked that
        if (escrow.paused()) {
            if (seed % 3 == 0) {
                try escrow.settle(new CourseEscrow.Outcome[](1)) {
                    revert("settle ran while paused");
                } catch (bytes memory err) {
                    _expectError(err, bytes4(keccak256("EnforcedPause()")), "paused settle");
                }
                done["settle.paused"] += 1;
                return;
            }
            escrow.unpause();
        }
        uint256 n = 1 + count % 4;
        CourseEscrow.Outcome[] memory batch = new CourseEscrow.Outcome[](n);
        bytes32[] memory settling = new bytes32[](n);
        uint256[3][] memory split = new uint256[3][](n);
        uint256 expected;
        for (uint256 i; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            bytes32 key = _pickKey(r);
            batch[i] = _outcome(key, r);
            if (_willSettle(key, batch[i], settling, expected)) {
                settling[expected] = key;
                split[expected] = _quote(key, batch[i]);
                expected += 1;
            }
        }
        uint256[3][] memory before = _creditSnapshot();
        vm.recordLogs();
        escrow.settle(batch);
        _checkSettledEvents(vm.getRecordedLogs(), settling, split, expected, n);
        for (uint256 j; j < expected; ++j) {
            Ghost storage g = _ghost[settling[j]];
            g.state = CourseEscrow.State.Settled;
            g.credited = split[j][0] + split[j][1] + split[j][2];
            openAmount[g.asset] -= g.amount;
            _checkKey(settling[j]);
            creditedTo[g.asset][escrow.termsOf(g.termsId).creator] += split[j][0];
            creditedTo[g.asset][escrow.treasury()] += split[j][1];
            creditedTo[g.asset][g.refundTo] += split[j][2];
        }
        _checkCreditDeltas(before);
        if (expected == 0) done["settle.allSkipped"] += 1;
        else done["settle.some"] += 1;
    }

    /// @notice Expires an open key (warping to its expiry if need be); one in 4 tries too early
    /// and one in 6 picks any key, which must revert unless it is still open and due.
    function expire(uint256 seed, uint256 callerSeed) external {
        _sync();
        if (_keys.length == 0) _deposit(seed, seed >> 128, seed >> 64);
        if (_keys.length == 0) return;
        bytes32 key = seed % 6 == 0 ? _keys[(seed >> 8) % _keys.length] : _openKey(seed >> 8);
        Ghost storage g = _ghost[key];
        address caller = callerSeed % 3 == 0 ? _stranger : _payees[callerSeed % _payees.length];
        if (g.state != CourseEscrow.State.Open) {
            vm.prank(caller);
            try escrow.expire(key) {
                revert("expired a key that is not open");
            } catch (bytes memory err) {
                _expectError(err, CourseEscrow.NotOpen.selector, "expire not open");
            }
            done["expire.notOpen"] += 1;
            return;
        }
        uint256 opensAtMs = uint256(g.deadlineMs) + uint256(escrow.termsOf(g.termsId).graceS) * 1000;
        if (currentTime * 1000 < opensAtMs) {
            if (seed % 4 == 1) {
                vm.prank(caller);
                try escrow.expire(key) {
                    revert("expired before deadline + grace");
                } catch (bytes memory err) {
                    _expectError(err, CourseEscrow.NotExpirable.selector, "expire early");
                }
                done["expire.early"] += 1;
                return;
            }
            currentTime = (opensAtMs + 999) / 1000;
            vm.warp(currentTime);
        }
        uint256[3][] memory before = _creditSnapshot();
        vm.prank(caller);
        escrow.expire(key);
        g.state = CourseEscrow.State.Expired;
        g.credited = g.amount;
        openAmount[g.asset] -= g.amount;
        _checkKey(key);
        creditedTo[g.asset][g.refundTo] += g.amount;
        _checkCreditDeltas(before);
        if (escrow.paused()) done["expire.whilePaused"] += 1;
        else done["expire"] += 1;
    }

    /// @notice Pays a payee with credit its whole credit, by `withdraw` (the payee itself, the
    /// reentrant payee through its own re-entering `pull`) or by a stranger's `withdrawFor`.
    function withdraw(uint256 seed, bool viaFor) external {
        _sync();
        address asset = seed % 2 == 0 ? ETH : address(token);
        uint256 start = (seed >> 8) % _payees.length;
        address payee = _payees[start];
        for (uint256 i; i < _payees.length; ++i) {
            address p = _payees[(start + i) % _payees.length];
            if (escrow.creditOf(asset, p) != 0) {
                payee = p;
                break;
            }
        }
        uint256 credit = escrow.creditOf(asset, payee);
        if (credit == 0) {
            vm.prank(payee);
            try escrow.withdraw(asset) {
                revert("withdrew nothing");
            } catch (bytes memory err) {
                _expectError(err, CourseEscrow.NothingToWithdraw.selector, "withdraw nothing");
            }
            done["withdraw.nothing"] += 1;
            return;
        }
        uint256 payeeBefore = _balance(asset, payee);
        uint256 escrowBefore = _balance(asset, address(escrow));
        if (viaFor) {
            vm.prank(_stranger);
            escrow.withdrawFor(payee, asset);
        } else if (payee == address(reentrantPayee) && asset == ETH) {
            reentrantPayee.pull(); // its receive() re-enters withdraw, which must pay nothing
        } else {
            vm.prank(payee);
            escrow.withdraw(asset);
        }
        checkEq(_balance(asset, payee) - payeeBefore, credit, "payee got its credit");
        checkEq(escrowBefore - _balance(asset, address(escrow)), credit, "escrow paid the credit");
        checkEq(escrow.creditOf(asset, payee), 0, "credit cleared");
        withdrawn[asset] += credit;
        withdrawnBy[asset][payee] += credit;
        if (escrow.paused()) done["withdraw.whilePaused"] += 1;
        else if (viaFor) done["withdrawFor"] += 1;
        else done["withdraw"] += 1;
    }

    /// @notice Pauses. When already paused, checks that pausing again reverts, then unpauses, so
    /// that every call changes the state.
    function pause() external {
        _sync();
        if (escrow.paused()) {
            try escrow.pause() {
                revert("paused twice");
            } catch (bytes memory err) {
                _expectError(err, bytes4(keccak256("EnforcedPause()")), "pause twice");
            }
            done["pause.again"] += 1;
            escrow.unpause();
            done["unpause"] += 1;
            return;
        }
        escrow.pause();
        done["pause"] += 1;
    }

    /// @notice Unpauses. When not paused, checks that unpausing reverts, then pauses.
    function unpause() external {
        _sync();
        if (!escrow.paused()) {
            try escrow.unpause() {
                revert("unpaused twice");
            } catch (bytes memory err) {
                _expectError(err, bytes4(keccak256("ExpectedPause()")), "unpause twice");
            }
            done["unpause.again"] += 1;
            escrow.pause();
            done["pause"] += 1;
            return;
        }
        escrow.unpause();
        done["unpause"] += 1;
    }

    /// @notice Platform shares go to the treasury in force when an escrow settles.
    function setTreasury(uint256 seed) external {
        _sync();
        escrow.setTreasury(_treasuries[seed % _treasuries.length]);
        done["setTreasury"] += 1;
    }

    /// @notice Time passes: seconds to minutes, or up to three days.
    function warp(uint256 seed) external {
        _sync();
        currentTime += seed % 4 == 0 ? 1 + (seed >> 8) % 60 : 1 + (seed >> 8) % 3 days;
        vm.warp(currentTime);
        done["warp"] += 1;
    }

    // ---- views for the invariants ------------------------------------------------------------

    function payees() external view returns (address[] memory) {
        return _payees;
    }

    function keys() external view returns (bytes32[] memory) {
        return _keys;
    }

    function ghostOf(bytes32 key) external view returns (Ghost memory) {
        return _ghost[key];
    }

    /// @notice The ghost books of every payee in `asset`, in the order of `payees()`.
    function books(address asset) external view returns (uint256[] memory credited, uint256[] memory taken) {
        credited = new uint256[](_payees.length);
        taken = new uint256[](_payees.length);
        for (uint256 i; i < _payees.length; ++i) {
            credited[i] = creditedTo[asset][_payees[i]];
            taken[i] = withdrawnBy[asset][_payees[i]];
        }
    }

    function selectors() external pure returns (bytes4[] memory out) {
        out = new bytes4[](9);
        out[0] = this.register.selector;
        out[1] = this.deposit.selector;
        out[2] = this.settle.selector;
        out[3] = this.expire.selector;
        out[4] = this.withdraw.selector;
        out[5] = this.pause.selector;
        out[6] = this.unpause.selector;
        out[7] = this.setTreasury.selector;
        out[8] = this.warp.selector;
    }

    // ---- internals ---------------------------------------------------------------------------

    function _sync() internal {
        vm.warp(currentTime);
    }

    function _registerNew(uint256 seed) internal {
        bytes32 course = keccak256(abi.encode("course", _courses.length));
        uint32 id = escrow.registerCourse(course, _terms(seed));
        checkEq(id, escrow.termsCount(), "new course: latest id");
        _courses.push(course);
        done["register.newCourse"] += 1;
    }

    /// @dev Valid terms: any shares, 1-3 strictly ascending tranches covering the deadline.
    function _terms(uint256 seed) internal view returns (CourseEscrow.Terms memory t) {
        seed = uint256(keccak256(abi.encode("terms", seed))); // small fuzz inputs: all bits vary
        t.creator = _creators[seed % _creators.length];
        t.creatorShareBps = uint16((seed >> 8) % 10_001);
        t.minScoreBps = uint16((seed >> 24) % 10_001);
        t.linear = (seed >> 40) % 2 == 0;
        t.metric = uint8((seed >> 41) % 2);
        t.graceS = uint32(1 + (seed >> 48) % 3 days);
        t.maxDeadlineS = uint32(1 hours + (seed >> 80) % 30 days);
        uint256 n = 1 + (seed >> 112) % 3;
        t.tranches = new Payout.Tranche[](n);
        for (uint256 i; i < n; ++i) {
            t.tranches[i].withinS = uint32(uint256(t.maxDeadlineS) * (i + 1) / n);
            t.tranches[i].bps = uint16((seed >> (128 + 16 * i)) % 10_001);
        }
    }

    function _deposit(uint256 seed, uint256 amount, uint256 count) internal {
        if (escrow.paused()) {
            if (seed % 3 == 0) {
                try escrow.deposit(new CourseEscrow.DepositInput[](0)) {
                    revert("deposit ran while paused");
                } catch (bytes memory err) {
                    _expectError(err, bytes4(keccak256("EnforcedPause()")), "paused deposit");
                }
                done["deposit.paused"] += 1;
                return;
            }
            escrow.unpause();
        }
        uint256 n = 1 + count % 3;
        CourseEscrow.DepositInput[] memory batch = new CourseEscrow.DepositInput[](n);
        uint256 eth;
        uint256 tokens;
        for (uint256 i; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, amount, i)));
            batch[i] = _depositInput(r, uint256(keccak256(abi.encode(amount, i))), _keys.length + i);
            if (batch[i].asset == ETH) eth += batch[i].amount;
            else tokens += batch[i].amount;
        }
        vm.deal(address(this), address(this).balance + eth);
        token.mint(address(this), tokens);
        if (seed % 16 == 15 && _keys.length != 0) {
            batch[n - 1].key = _keys[(seed >> 8) % _keys.length]; // already deposited
            uint256 balanceBefore = address(escrow).balance;
            try escrow.deposit{value: eth}(batch) {
                revert("deposited a key twice");
            } catch (bytes memory err) {
                _expectError(err, CourseEscrow.AlreadyDeposited.selector, "duplicate key");
            }
            checkEq(address(escrow).balance, balanceBefore, "a reverted batch moves nothing");
            done["deposit.duplicate"] += 1;
            return;
        }
        escrow.deposit{value: eth}(batch);
        for (uint256 i; i < n; ++i) {
            CourseEscrow.DepositInput memory d = batch[i];
            _keys.push(d.key);
            _ghost[d.key] = Ghost({
                asset: d.asset,
                termsId: escrow.courseTerms(d.course),
                state: CourseEscrow.State.Open,
                enrolledAtMs: d.enrolledAtMs,
                deadlineMs: d.deadlineMs,
                refundTo: d.refundTo,
                amount: d.amount,
                credited: 0
            });
            deposited[d.asset] += d.amount;
            openAmount[d.asset] += d.amount;
        }
        done["deposit"] += 1;
    }

    function _depositInput(uint256 r, uint256 a, uint256 index)
        internal
        view
        returns (CourseEscrow.DepositInput memory d)
    {
        d.key = keccak256(abi.encode("enrollment", index));
        d.course = _courses[r % _courses.length];
        d.asset = (r >> 8) % 2 == 0 ? ETH : address(token);
        // 1 in 8 tiny (rounding), 1 in 64 the largest allowed, else a realistic fee.
        if (a % 8 == 0) d.amount = 1 + (a >> 8) % 999;
        else if (a % 64 == 1) d.amount = escrow.MAX_DEPOSIT();
        else if (d.asset == ETH) d.amount = 1e15 + (a >> 8) % 1000 ether;
        else d.amount = 1 + (a >> 8) % 1e12; // up to a million tUSD
        d.refundTo = _learners[(r >> 16) % _learners.length];
        uint256 maxMs = uint256(escrow.termsOf(escrow.courseTerms(d.course)).maxDeadlineS) * 1000;
        uint256 nowMs = currentTime * 1000;
        d.enrolledAtMs = uint48(nowMs - (r >> 32) % (maxMs / 2 + 1));
        d.deadlineMs = uint48(d.enrolledAtMs + 1 + (r >> 96) % maxMs);
    }

    /// @dev Mostly an open key; sometimes any key (often settled or expired), or an unknown one.
    function _pickKey(uint256 r) internal view returns (bytes32) {
        if (r % 16 == 0) return keccak256(abi.encode("unknown", r));
        if (r % 5 == 1) return _keys[(r >> 8) % _keys.length];
        return _openKey(r >> 8);
    }

    function _openKey(uint256 r) internal view returns (bytes32) {
        uint256 n = _keys.length;
        uint256 start = r % n;
        for (uint256 i; i < n; ++i) {
            bytes32 key = _keys[(start + i) % n];
            if (_ghost[key].state == CourseEscrow.State.Open) return key;
        }
        return _keys[start];
    }

    function _outcome(bytes32 key, uint256 r) internal view returns (CourseEscrow.Outcome memory o) {
        Ghost storage g = _ghost[key];
        o.key = key;
        o.complete = (r >> 8) % 3 != 0;
        uint256 span = uint256(g.deadlineMs) - uint256(g.enrolledAtMs) + 2 hours * 1000;
        uint256 atMs = uint256(g.enrolledAtMs) + (r >> 16) % span;
        if ((r >> 80) % 10 == 0 && g.enrolledAtMs > 60_000) atMs = g.enrolledAtMs - 60_000; // clock skew
        if ((r >> 80) % 10 == 1) atMs = g.deadlineMs; // the inclusive edge
        o.completedAtMs = uint48(atMs);
        uint256 s = (r >> 96) % 12;
        if (s == 0) o.scoreBps = 10_000;
        else if (s == 1) o.scoreBps = uint16(10_001 + (r >> 112) % 500); // out of range: skipped
        else o.scoreBps = uint16((r >> 112) % 10_001);
    }

    /// @dev The contract's skip rule restated: open (and not settled earlier in this batch),
    /// score in range, and a counted completion or a passed deadline.
    function _willSettle(bytes32 key, CourseEscrow.Outcome memory o, bytes32[] memory settling, uint256 n)
        internal
        view
        returns (bool)
    {
        Ghost storage g = _ghost[key];
        if (g.state != CourseEscrow.State.Open) return false;
        for (uint256 j; j < n; ++j) {
            if (settling[j] == key) return false;
        }
        if (o.scoreBps > 10_000) return false;
        bool counted = o.complete && o.completedAtMs <= g.deadlineMs;
        return counted || currentTime * 1000 >= g.deadlineMs;
    }

    function _quote(bytes32 key, CourseEscrow.Outcome memory o) internal view returns (uint256[3] memory s) {
        Ghost storage g = _ghost[key];
        CourseEscrow.Terms memory t = escrow.termsOf(g.termsId);
        Payout.Case memory c = Payout.Case({
            tranches: t.tranches,
            linear: t.linear,
            minScoreBps: t.minScoreBps,
            creatorShareBps: t.creatorShareBps,
            deposit: g.amount,
            enrolledAtMs: g.enrolledAtMs,
            deadlineMs: g.deadlineMs,
            complete: o.complete,
            completedAtMs: o.completedAtMs,
            scoreBps: o.scoreBps
        });
        (, s[0], s[1], s[2]) = escrow.quote(c);
        checkEq(s[0] + s[1] + s[2], g.amount, "quote splits the whole deposit");
    }

    function _checkSettledEvents(
        Vm.Log[] memory logs,
        bytes32[] memory settling,
        uint256[3][] memory split,
        uint256 expected,
        uint256 n
    ) internal pure {
        uint256 settled;
        uint256 skipped;
        for (uint256 i; i < logs.length; ++i) {
            bytes32 topic = logs[i].topics[0];
            if (topic == CourseEscrow.SettlementSkipped.selector) {
                skipped += 1;
            } else if (topic == CourseEscrow.Settled.selector) {
                check(settled < expected, "more settled than expected");
                checkEq(logs[i].topics[1], settling[settled], "settled the expected key, in order");
                (,,,, uint256 creator, uint256 platform, uint256 learner) =
                    abi.decode(logs[i].data, (uint8, bool, uint16, uint256, uint256, uint256, uint256));
                checkEq(creator, split[settled][0], "creator amount as quoted");
                checkEq(platform, split[settled][1], "platform amount as quoted");
                checkEq(learner, split[settled][2], "learner amount as quoted");
                settled += 1;
            }
        }
        checkEq(settled, expected, "settled as many as predicted");
        checkEq(skipped, n - expected, "skipped the rest");
    }

    /// @dev A key just closed: the chain agrees, and it paid out exactly its deposit.
    function _checkKey(bytes32 key) internal view {
        Ghost storage g = _ghost[key];
        CourseEscrow.Escrow memory e = escrow.escrowOf(key);
        check(e.state == g.state, "closed as expected");
        checkEq(g.credited, g.amount, "a closed key paid its deposit exactly");
    }

    function _creditSnapshot() internal view returns (uint256[3][] memory s) {
        s = new uint256[3][](_payees.length);
        for (uint256 i; i < _payees.length; ++i) {
            s[i][0] = escrow.creditOf(ETH, _payees[i]);
            s[i][1] = escrow.creditOf(address(token), _payees[i]);
        }
    }

    /// @dev Every payee's credit equals what the ghost books say it was credited minus what it
    /// withdrew, and never decreased during the action.
    function _checkCreditDeltas(uint256[3][] memory before) internal view {
        for (uint256 i; i < _payees.length; ++i) {
            address p = _payees[i];
            uint256 e = escrow.creditOf(ETH, p);
            uint256 t = escrow.creditOf(address(token), p);
            checkLe(before[i][0], e, "ether credit never shrinks but by withdrawal");
            checkLe(before[i][1], t, "token credit never shrinks but by withdrawal");
            checkEq(e, creditedTo[ETH][p] - withdrawnBy[ETH][p], "ether credit as booked");
            checkEq(t, creditedTo[address(token)][p] - withdrawnBy[address(token)][p], "token credit as booked");
        }
    }

    function _expectError(bytes memory err, bytes4 selector, string memory what) internal pure {
        check(err.length >= 4 && bytes4(err) == selector, string.concat(what, ": unexpected error"));
    }

    function _balance(address asset, address who) internal view returns (uint256) {
        return asset == ETH ? who.balance : token.balanceOf(who);
    }

    function _addr(string memory name) internal pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encode("learnstream", name)))));
    }

    function _digit(uint256 i) internal pure returns (string memory) {
        return string(abi.encodePacked(bytes1(uint8(48 + i))));
    }
}

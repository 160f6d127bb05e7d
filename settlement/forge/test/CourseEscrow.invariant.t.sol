// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CourseEscrow} from "learnstream/CourseEscrow.sol";
import {EscrowHandler} from "./EscrowHandler.sol";
import {InvariantTest, VM, Vm, check, checkEq, checkLe, consoleLog} from "./Forge.sol";

/// @notice The escrow's books balance after every call of every random sequence the handler
/// makes (runs and depth in foundry.toml). Each property is checked for ether and for tUSD.
/// @dev One invariant function checks all four properties: forge runs a separate campaign per
/// `invariant_` function, from the same seed, so four functions would fuzz the same sequences
/// four times over.
contract CourseEscrowInvariants is InvariantTest {
    Vm internal constant vm = VM;
    address internal constant ETH = address(0);

    EscrowHandler internal handler;
    CourseEscrow internal escrow;
    address[2] internal assets;
    address[] internal payees;

    function setUp() public {
        handler = new EscrowHandler();
        escrow = handler.escrow();
        assets = [ETH, address(handler.token())];
        payees = handler.payees();
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: handler.selectors()}));
    }

    /// @notice Checked after every call. The per-key property is checked for each key as it
    /// closes (in the handler) and for every key at the end of each run (`afterInvariant`): a
    /// scan of all keys after every call made the campaign several times slower.
    function invariant_books() public view {
        for (uint256 a; a < assets.length; ++a) {
            _booksBalance(assets[a]);
        }
    }

    /// @dev For one asset: (1) the escrow holds exactly what came in minus what went out;
    /// (2) outstanding credits plus the open escrows are exactly that balance, so every unit held
    /// is owed to someone and nothing owed is missing; (3) no payee ever withdrew more than it was
    /// credited, and what it may still withdraw is exactly the difference.
    function _booksBalance(address asset) internal view {
        uint256 balance = _balance(asset, address(escrow));
        checkEq(balance, handler.deposited(asset) - handler.withdrawn(asset), "balance == deposited - withdrawn");
        (uint256[] memory credited, uint256[] memory taken) = handler.books(asset);
        uint256 owed = handler.openAmount(asset);
        for (uint256 i; i < payees.length; ++i) {
            uint256 credit = escrow.creditOf(asset, payees[i]);
            owed += credit;
            checkLe(taken[i], credited[i], "withdrawn <= credited");
            checkEq(credit, credited[i] - taken[i], "credit == credited - withdrawn");
        }
        checkEq(owed, balance, "credits + open == balance");
    }

    /// @notice Every settled or expired key paid out exactly its deposit (once), an open key
    /// nothing, the chain's state of each key is the one the ghost books expect, and the open
    /// ones add up to the handler's open amount.
    function _eachKeyPaysOutItsDepositOnce() internal view {
        bytes32[] memory keys = handler.keys();
        uint256[2] memory open;
        for (uint256 i; i < keys.length; ++i) {
            EscrowHandler.Ghost memory g = handler.ghostOf(keys[i]);
            CourseEscrow.Escrow memory e = escrow.escrowOf(keys[i]);
            check(e.state == g.state, "state as expected");
            checkEq(e.amount, g.amount, "deposit kept");
            if (g.state == CourseEscrow.State.Open) {
                checkEq(g.credited, 0, "an open key paid nothing");
                open[e.asset == ETH ? 0 : 1] += e.amount;
            } else {
                checkEq(g.credited, g.amount, "a closed key paid its deposit exactly");
            }
        }
        for (uint256 a; a < assets.length; ++a) {
            checkEq(open[a], handler.openAmount(assets[a]), "open escrows as booked");
        }
    }

    /// @notice After a run: how many calls of each kind did what they are for, and how many made
    /// a planned revert (`forge test -vv` prints the last run's; the pytest that runs forge
    /// reads them to show the sequences are not mostly no-ops).
    function afterInvariant() public view {
        _eachKeyPaysOutItsDepositOnce();
        string[23] memory actions = [
            "register.newCourse",
            "register.newTerms",
            "register.same",
            "deposit",
            "deposit.duplicate",
            "deposit.paused",
            "settle.some",
            "settle.allSkipped",
            "settle.paused",
            "expire",
            "expire.whilePaused",
            "expire.notOpen",
            "expire.early",
            "withdraw",
            "withdrawFor",
            "withdraw.whilePaused",
            "withdraw.nothing",
            "pause",
            "pause.again",
            "unpause",
            "unpause.again",
            "setTreasury",
            "warp"
        ];
        for (uint256 i; i < actions.length; ++i) {
            consoleLog(actions[i], handler.done(actions[i]));
        }
    }

    function _balance(address asset, address who) internal view returns (uint256) {
        return asset == ETH ? who.balance : handler.token().balanceOf(who);
    }
}

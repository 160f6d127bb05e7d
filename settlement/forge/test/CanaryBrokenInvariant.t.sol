// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {EscrowHandler} from "./EscrowHandler.sol";
import {InvariantTest, VM, Vm, checkEq} from "./Forge.sol";

/// @notice A deliberately wrong invariant ("the escrow keeps every deposit", forgetting
/// withdrawals), to show that the harness can fail: the fuzzer must find a deposit, a
/// settlement or an expiry and a withdrawal, and forge must exit non-zero. Skipped unless
/// LEARNSTREAM_FORGE_CANARY=true (tests/test_settlement_static.py sets it and expects failure).
contract CanaryBrokenInvariant is InvariantTest {
    Vm internal constant vm = VM;

    EscrowHandler internal handler;

    function setUp() public {
        if (!vm.envOr("LEARNSTREAM_FORGE_CANARY", false)) {
            vm.skip(true, "a deliberately failing canary: set LEARNSTREAM_FORGE_CANARY=true");
        }
        handler = new EscrowHandler();
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: handler.selectors()}));
    }

    function invariant_canaryEscrowKeepsEveryDeposit() public view {
        checkEq(address(handler.escrow()).balance, handler.deposited(address(0)), "canary: balance == deposited");
    }
}

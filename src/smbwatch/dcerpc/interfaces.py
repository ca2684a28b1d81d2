"""DCE/RPC interface names (by abstract syntax UUID) and operation names (by opnum).

Operation names are the ones of the Microsoft protocol documents (MS-SAMR
``SamrLookupNamesInDomain``, MS-RRP ``BaseRegSetValue``, MS-TSCH ``SchRpcRegisterTask``), which
are also the names Zeek's ``dce_rpc.log`` uses, so Sigma rules written for Zeek
(``endpoint``/``operation``) match. As in
Zeek, Wireshark and Suricata, the leading ``R`` of the MS-SCMR and MS-DCOM method names is dropped
(``CreateServiceW``). Opnums the documents mark "not used on the wire" keep their historical name
where one exists, else they are left out.

``returns`` says how to read the 32-bit value that ends every response stub: a Win32 error code,
an NTSTATUS or an HRESULT.
"""

from __future__ import annotations

from typing import Final

NDR_UUID: Final = "8a885d04-1ceb-11c9-9fe8-08002b104860"
NDR64_UUID: Final = "71710533-beba-4937-8319-b5dbef9ccc36"
BIND_TIME_FEATURE_PREFIX: Final = (
    "6cb71c2c-9812-4540-"  # MS-RPCE 3.3.1.5.3: not a real transfer syntax
)


class Interface:
    """One RPC interface: its name, version, opnum → operation name, and return-code kind."""

    name: str
    uuid: str
    version: str
    operations: tuple[str | None, ...]
    returns: str  # "win32", "ntstatus" or "hresult"

    def __init__(
        self,
        name: str,
        uuid: str,
        version: str,
        operations: tuple[str | None, ...],
        returns: str,
    ) -> None:
        self.name = name
        self.uuid = uuid
        self.version = version
        self.operations = operations
        self.returns = returns

    def operation(self, opnum: int) -> str | None:
        """The operation name of ``opnum``, or None when this table does not know it."""
        return self.operations[opnum] if 0 <= opnum < len(self.operations) else None


def _ops(names: str) -> tuple[str | None, ...]:
    """Operation names in opnum order, whitespace separated; ``-`` marks an opnum with no name."""
    return tuple(None if name == "-" else name for name in names.split())


_IUNKNOWN: Final = "QueryInterface AddRef Release "
_EFSRPC: Final = _ops("""
        EfsRpcOpenFileRaw EfsRpcReadFileRaw EfsRpcWriteFileRaw EfsRpcCloseRaw
        EfsRpcEncryptFileSrv EfsRpcDecryptFileSrv EfsRpcQueryUsersOnFile
        EfsRpcQueryRecoveryAgents EfsRpcRemoveUsersFromFile EfsRpcAddUsersToFile -
        EfsRpcNotSupported EfsRpcFileKeyInfo EfsRpcDuplicateEncryptionInfoFile -
        EfsRpcAddUsersToFileEx EfsRpcFileKeyInfoEx - EfsRpcGetEncryptedFileMetadata
        EfsRpcSetEncryptedFileMetadata
        EfsRpcFlushEfsCache EfsRpcEncryptFileExSrv EfsRpcQueryProtectors
        """)

_TABLE: Final = (
    Interface(
        "svcctl",
        "367abb81-9844-35f1-ad32-98f038001003",
        "2.0",
        _ops("""
        CloseServiceHandle ControlService DeleteService LockServiceDatabase
        QueryServiceObjectSecurity SetServiceObjectSecurity QueryServiceStatus SetServiceStatus
        UnlockServiceDatabase NotifyBootConfigStatus ScSetServiceBitsW ChangeServiceConfigW
        CreateServiceW EnumDependentServicesW EnumServicesStatusW OpenSCManagerW OpenServiceW
        QueryServiceConfigW QueryServiceLockStatusW StartServiceW GetServiceDisplayNameW
        GetServiceKeyNameW ScSetServiceBitsA ChangeServiceConfigA CreateServiceA
        EnumDependentServicesA EnumServicesStatusA OpenSCManagerA OpenServiceA QueryServiceConfigA
        QueryServiceLockStatusA StartServiceA GetServiceDisplayNameA GetServiceKeyNameA
        ScGetCurrentGroupStateW EnumServiceGroupW ChangeServiceConfig2A ChangeServiceConfig2W
        QueryServiceConfig2A QueryServiceConfig2W QueryServiceStatusEx EnumServicesStatusExA
        EnumServicesStatusExW ScSendTSMessage CreateServiceWOW64A CreateServiceWOW64W
        ScQueryServiceTagInfo NotifyServiceStatusChange GetNotifyResults CloseNotifyHandle
        ControlServiceExA ControlServiceExW ScSendPnPMessage ScValidatePnPService
        ScOpenServiceStatusHandle - QueryServiceConfigEx - - - CreateWowService - - - OpenSCManager2
        """),
        "win32",
    ),
    Interface(
        "atsvc",
        "1ff70682-0a51-30e8-076d-740be8cee98b",
        "1.0",
        _ops("NetrJobAdd NetrJobDel NetrJobEnum NetrJobGetInfo"),
        "win32",
    ),
    Interface(
        "ITaskSchedulerService",
        "86d35949-83c9-4044-b424-db363231fd0c",
        "1.0",
        _ops("""
        SchRpcHighestVersion SchRpcRegisterTask SchRpcRetrieveTask SchRpcCreateFolder
        SchRpcSetSecurity SchRpcGetSecurity SchRpcEnumFolders SchRpcEnumTasks SchRpcEnumInstances
        SchRpcGetInstanceInfo SchRpcStopInstance SchRpcStop SchRpcRun SchRpcDelete SchRpcRename
        SchRpcScheduledRuntimes SchRpcGetLastRunInfo SchRpcGetTaskInfo
        SchRpcGetNumberOfMissedRuns SchRpcEnableTask
        """),
        "hresult",
    ),
    Interface(
        "sasec",
        "378e52b0-c0a9-11cf-822d-00aa0051e40f",
        "1.0",
        _ops("""
        SASetAccountInformation SASetNSAccountInformation SAGetNSAccountInformation
        SAGetAccountInformation
        """),
        "hresult",
    ),
    Interface(
        "winreg",
        "338cd001-2244-31f1-aaaa-900038001003",
        "1.0",
        _ops("""
        OpenClassesRoot OpenCurrentUser OpenLocalMachine OpenPerformanceData OpenUsers
        BaseRegCloseKey BaseRegCreateKey BaseRegDeleteKey BaseRegDeleteValue BaseRegEnumKey
        BaseRegEnumValue BaseRegFlushKey BaseRegGetKeySecurity BaseRegLoadKey
        BaseRegNotifyChangeKeyValue BaseRegOpenKey BaseRegQueryInfoKey BaseRegQueryValue
        BaseRegReplaceKey BaseRegRestoreKey BaseRegSaveKey BaseRegSetKeySecurity BaseRegSetValue
        BaseRegUnLoadKey BaseInitiateSystemShutdown BaseAbortSystemShutdown BaseRegGetVersion
        OpenCurrentConfig OpenDynData BaseRegQueryMultipleValues BaseInitiateSystemShutdownEx
        BaseRegSaveKeyEx OpenPerformanceText OpenPerformanceNlsText BaseRegQueryMultipleValues2
        BaseRegDeleteKeyEx
        """),
        "win32",
    ),
    Interface(
        "srvsvc",
        "4b324fc8-1670-01d3-1278-5a47bf6ee188",
        "3.0",
        _ops("""
        NetrCharDevEnum NetrCharDevGetInfo NetrCharDevControl NetrCharDevQEnum NetrCharDevQGetInfo
        NetrCharDevQSetInfo NetrCharDevQPurge NetrCharDevQPurgeSelf NetrConnectionEnum
        NetrFileEnum NetrFileGetInfo NetrFileClose NetrSessionEnum NetrSessionDel NetrShareAdd
        NetrShareEnum NetrShareGetInfo NetrShareSetInfo NetrShareDel NetrShareDelSticky
        NetrShareCheck NetrServerGetInfo NetrServerSetInfo NetrServerDiskEnum
        NetrServerStatisticsGet NetrServerTransportAdd NetrServerTransportEnum
        NetrServerTransportDel NetrRemoteTOD NetrServerSetServiceBits NetprPathType
        NetprPathCanonicalize NetprPathCompare NetprNameValidate NetprNameCanonicalize
        NetprNameCompare NetrShareEnumSticky NetrShareDelStart NetrShareDelCommit
        NetrpGetFileSecurity NetrpSetFileSecurity NetrServerTransportAddEx
        NetrServerSetServiceBitsEx NetrDfsGetVersion NetrDfsCreateLocalPartition
        NetrDfsDeleteLocalPartition NetrDfsSetLocalVolumeState NetrDfsSetServerInfo
        NetrDfsCreateExitPoint NetrDfsDeleteExitPoint NetrDfsModifyPrefix NetrDfsFixLocalVolume
        NetrDfsManagerReportSiteInfo NetrServerTransportDelEx NetrServerAliasAdd
        NetrServerAliasEnum NetrServerAliasDel NetrShareDelEx
        """),
        "win32",
    ),
    Interface(
        "wkssvc",
        "6bffd098-a112-3610-9833-46c3f87e345a",
        "1.0",
        _ops("""
        NetrWkstaGetInfo NetrWkstaSetInfo NetrWkstaUserEnum NetrWkstaUserGetInfo
        NetrWkstaUserSetInfo NetrWkstaTransportEnum NetrWkstaTransportAdd NetrWkstaTransportDel
        NetrUseAdd NetrUseGetInfo NetrUseDel NetrUseEnum NetrMessageBufferSend
        NetrWorkstationStatisticsGet NetrLogonDomainNameAdd NetrLogonDomainNameDel NetrJoinDomain
        NetrUnjoinDomain NetrValidateName NetrRenameMachineInDomain NetrGetJoinInformation
        NetrGetJoinableOUs NetrJoinDomain2 NetrUnjoinDomain2 NetrRenameMachineInDomain2
        NetrValidateName2 NetrGetJoinableOUs2 NetrAddAlternateComputerName
        NetrRemoveAlternateComputerName NetrSetPrimaryComputerName NetrEnumerateComputerNames
        NetrWorkstationResetDfsCache
        """),
        "win32",
    ),
    Interface(
        "samr",
        "12345778-1234-abcd-ef00-0123456789ac",
        "1.0",
        _ops("""
        SamrConnect SamrCloseHandle SamrSetSecurityObject SamrQuerySecurityObject
        SamrShutdownSamServer SamrLookupDomainInSamServer SamrEnumerateDomainsInSamServer
        SamrOpenDomain SamrQueryInformationDomain SamrSetInformationDomain SamrCreateGroupInDomain
        SamrEnumerateGroupsInDomain SamrCreateUserInDomain SamrEnumerateUsersInDomain
        SamrCreateAliasInDomain SamrEnumerateAliasesInDomain SamrGetAliasMembership
        SamrLookupNamesInDomain SamrLookupIdsInDomain SamrOpenGroup SamrQueryInformationGroup
        SamrSetInformationGroup SamrAddMemberToGroup SamrDeleteGroup SamrRemoveMemberFromGroup
        SamrGetMembersInGroup SamrSetMemberAttributesOfGroup SamrOpenAlias
        SamrQueryInformationAlias SamrSetInformationAlias SamrDeleteAlias SamrAddMemberToAlias
        SamrRemoveMemberFromAlias SamrGetMembersInAlias SamrOpenUser SamrDeleteUser
        SamrQueryInformationUser SamrSetInformationUser SamrChangePasswordUser
        SamrGetGroupsForUser SamrQueryDisplayInformation SamrGetDisplayEnumerationIndex
        SamrTestPrivateFunctionsDomain SamrTestPrivateFunctionsUser
        SamrGetUserDomainPasswordInformation SamrRemoveMemberFromForeignDomain
        SamrQueryInformationDomain2 SamrQueryInformationUser2 SamrQueryDisplayInformation2
        SamrGetDisplayEnumerationIndex2 SamrCreateUser2InDomain SamrQueryDisplayInformation3
        SamrAddMultipleMembersToAlias SamrRemoveMultipleMembersFromAlias
        SamrOemChangePasswordUser2 SamrUnicodeChangePasswordUser2
        SamrGetDomainPasswordInformation SamrConnect2 SamrSetInformationUser2
        SamrSetBootKeyInformation SamrGetBootKeyInformation SamrConnect3 SamrConnect4
        SamrUnicodeChangePasswordUser3 SamrConnect5 SamrRidToSid SamrSetDSRMPassword
        SamrValidatePassword SamrQueryLocalizableAccountsInDomain SamrPerformGenericOperation
        """),
        "ntstatus",
    ),
    Interface(
        "lsarpc",
        "12345778-1234-abcd-ef00-0123456789ab",
        "0.0",
        _ops("""
        LsarClose LsarDelete LsarEnumeratePrivileges LsarQuerySecurityObject
        LsarSetSecurityObject LsarChangePassword LsarOpenPolicy LsarQueryInformationPolicy
        LsarSetInformationPolicy LsarClearAuditLog LsarCreateAccount LsarEnumerateAccounts
        LsarCreateTrustedDomain LsarEnumerateTrustedDomains LsarLookupNames LsarLookupSids
        LsarCreateSecret LsarOpenAccount LsarEnumeratePrivilegesAccount
        LsarAddPrivilegesToAccount LsarRemovePrivilegesFromAccount LsarGetQuotasForAccount
        LsarSetQuotasForAccount LsarGetSystemAccessAccount LsarSetSystemAccessAccount
        LsarOpenTrustedDomain LsarQueryInfoTrustedDomain LsarSetInformationTrustedDomain
        LsarOpenSecret LsarSetSecret LsarQuerySecret LsarLookupPrivilegeValue
        LsarLookupPrivilegeName LsarLookupPrivilegeDisplayName LsarDeleteObject
        LsarEnumerateAccountsWithUserRight LsarEnumerateAccountRights LsarAddAccountRights
        LsarRemoveAccountRights LsarQueryTrustedDomainInfo LsarSetTrustedDomainInfo
        LsarDeleteTrustedDomain LsarStorePrivateData LsarRetrievePrivateData LsarOpenPolicy2
        LsarGetUserName LsarQueryInformationPolicy2 LsarSetInformationPolicy2
        LsarQueryTrustedDomainInfoByName LsarSetTrustedDomainInfoByName
        LsarEnumerateTrustedDomainsEx LsarCreateTrustedDomainEx LsarCloseTrustedDomainEx
        LsarQueryDomainInformationPolicy LsarSetDomainInformationPolicy
        LsarOpenTrustedDomainByName LsarTestCall LsarLookupSids2 LsarLookupNames2
        LsarCreateTrustedDomainEx2 CredrWrite CredrRead CredrEnumerate
        CredrWriteDomainCredentials CredrReadDomainCredentials CredrDelete CredrGetTargetInfo
        CredrProfileLoaded LsarLookupNames3 CredrGetSessionTypes LsarRegisterAuditEvent
        LsarGenAuditEvent LsarUnregisterAuditEvent LsarQueryForestTrustInformation
        LsarSetForestTrustInformation CredrRename LsarLookupSids3 LsarLookupNames4
        LsarOpenPolicySce LsarAdtRegisterSecurityEventSource
        LsarAdtUnregisterSecurityEventSource LsarAdtReportSecurityEvent
        """),
        "ntstatus",
    ),
    Interface(
        "netlogon",
        "12345678-1234-abcd-ef00-01234567cffb",
        "1.0",
        _ops("""
        NetrLogonUasLogon NetrLogonUasLogoff NetrLogonSamLogon NetrLogonSamLogoff
        NetrServerReqChallenge NetrServerAuthenticate NetrServerPasswordSet NetrDatabaseDeltas
        NetrDatabaseSync NetrAccountDeltas NetrAccountSync NetrGetDCName NetrLogonControl
        NetrGetAnyDCName NetrLogonControl2 NetrServerAuthenticate2 NetrDatabaseSync2
        NetrDatabaseRedo NetrLogonControl2Ex NetrEnumerateTrustedDomains DsrGetDcName
        NetrLogonGetCapabilities NetrLogonSetServiceBits NetrLogonGetTrustRid
        NetrLogonComputeServerDigest NetrLogonComputeClientDigest NetrServerAuthenticate3
        DsrGetDcNameEx DsrGetSiteName NetrLogonGetDomainInfo NetrServerPasswordSet2
        NetrServerPasswordGet NetrLogonSendToSam DsrAddressToSiteNamesW DsrGetDcNameEx2
        NetrLogonGetTimeServiceParentDomain NetrEnumerateTrustedDomainsEx
        DsrAddressToSiteNamesExW DsrGetDcSiteCoverageW NetrLogonSamLogonEx
        DsrEnumerateDomainTrusts DsrDeregisterDnsHostRecords NetrServerTrustPasswordsGet
        DsrGetForestTrustInformation NetrGetForestTrustInformation NetrLogonSamLogonWithFlags
        NetrServerGetTrustInfo - DsrUpdateReadOnlyServerDnsRecords NetrChainSetClientAttributes
        """),
        "ntstatus",
    ),
    Interface(
        "spoolss",
        "12345678-1234-abcd-ef00-0123456789ab",
        "1.0",
        _ops("""
        RpcEnumPrinters RpcOpenPrinter RpcSetJob RpcGetJob RpcEnumJobs RpcAddPrinter
        RpcDeletePrinter RpcSetPrinter RpcGetPrinter RpcAddPrinterDriver RpcEnumPrinterDrivers
        RpcGetPrinterDriver RpcGetPrinterDriverDirectory RpcDeletePrinterDriver
        RpcAddPrintProcessor RpcEnumPrintProcessors RpcGetPrintProcessorDirectory
        RpcStartDocPrinter RpcStartPagePrinter RpcWritePrinter RpcEndPagePrinter RpcAbortPrinter
        RpcReadPrinter RpcEndDocPrinter RpcAddJob RpcScheduleJob RpcGetPrinterData
        RpcSetPrinterData RpcWaitForPrinterChange RpcClosePrinter RpcAddForm RpcDeleteForm
        RpcGetForm RpcSetForm RpcEnumForms RpcEnumPorts RpcEnumMonitors RpcAddPort
        RpcConfigurePort RpcDeletePort RpcCreatePrinterIC RpcPlayGdiScriptOnPrinterIC
        RpcDeletePrinterIC RpcAddPrinterConnection RpcDeletePrinterConnection
        RpcPrinterMessageBox RpcAddMonitor RpcDeleteMonitor RpcDeletePrintProcessor
        RpcAddPrintProvidor RpcDeletePrintProvidor RpcEnumPrintProcessorDatatypes
        RpcResetPrinter RpcGetPrinterDriver2 RpcClientFindFirstPrinterChangeNotification
        RpcFindNextPrinterChangeNotification RpcFindClosePrinterChangeNotification
        RpcRouterFindFirstPrinterChangeNotificationOld RpcReplyOpenPrinter
        RpcRouterReplyPrinter RpcReplyClosePrinter RpcAddPortEx
        RpcRemoteFindFirstPrinterChangeNotification RpcSpoolerInit RpcResetPrinterEx
        RpcRemoteFindFirstPrinterChangeNotificationEx RpcRouterReplyPrinterEx
        RpcRouterRefreshPrinterChangeNotification RpcSetAllocFailCount RpcOpenPrinterEx
        RpcAddPrinterEx RpcSetPort RpcEnumPrinterData RpcDeletePrinterData RpcClusterSplOpen
        RpcClusterSplClose RpcClusterSplIsAlive RpcSetPrinterDataEx RpcGetPrinterDataEx
        RpcEnumPrinterDataEx RpcEnumPrinterKey RpcDeletePrinterDataEx RpcDeletePrinterKey
        RpcSeekPrinter RpcDeletePrinterDriverEx RpcAddPerMachineConnection
        RpcDeletePerMachineConnection RpcEnumPerMachineConnections RpcXcvData
        RpcAddPrinterDriverEx
        """),
        "win32",
    ),
    Interface(
        "IRemoteWinspool",
        "76f03f96-cdfd-44fc-a22c-64950a001209",
        "1.0",
        _ops("""
        RpcAsyncOpenPrinter RpcAsyncAddPrinter RpcAsyncSetJob RpcAsyncGetJob RpcAsyncEnumJobs
        RpcAsyncAddJob RpcAsyncScheduleJob RpcAsyncDeletePrinter RpcAsyncSetPrinter
        RpcAsyncGetPrinter RpcAsyncStartDocPrinter RpcAsyncStartPagePrinter RpcAsyncWritePrinter
        RpcAsyncEndPagePrinter RpcAsyncEndDocPrinter RpcAsyncAbortPrinter RpcAsyncGetPrinterData
        RpcAsyncGetPrinterDataEx RpcAsyncSetPrinterData RpcAsyncSetPrinterDataEx
        RpcAsyncClosePrinter RpcAsyncAddForm RpcAsyncDeleteForm RpcAsyncGetForm RpcAsyncSetForm
        RpcAsyncEnumForms RpcAsyncGetPrinterDriver RpcAsyncEnumPrinterData
        RpcAsyncEnumPrinterDataEx RpcAsyncEnumPrinterKey RpcAsyncDeletePrinterData
        RpcAsyncDeletePrinterDataEx RpcAsyncDeletePrinterKey RpcAsyncXcvData
        RpcAsyncSendRecvBidiData RpcAsyncCreatePrinterIC RpcAsyncPlayGdiScriptOnPrinterIC
        RpcAsyncDeletePrinterIC RpcAsyncEnumPrinters RpcAsyncAddPrinterDriver
        RpcAsyncEnumPrinterDrivers RpcAsyncGetPrinterDriverDirectory RpcAsyncDeletePrinterDriver
        RpcAsyncDeletePrinterDriverEx RpcAsyncAddPrintProcessor RpcAsyncEnumPrintProcessors
        RpcAsyncGetPrintProcessorDirectory RpcAsyncEnumPorts RpcAsyncEnumMonitors
        RpcAsyncAddPort RpcAsyncSetPort RpcAsyncAddMonitor RpcAsyncDeleteMonitor
        RpcAsyncDeletePrintProcessor RpcAsyncEnumPrintProcessorDatatypes
        RpcAsyncAddPerMachineConnection RpcAsyncDeletePerMachineConnection
        RpcAsyncEnumPerMachineConnections RpcSyncRegisterForRemoteNotifications
        RpcSyncUnRegisterForRemoteNotifications RpcSyncRefreshRemoteNotifications
        RpcAsyncGetRemoteNotifications RpcAsyncInstallPrinterDriverFromPackage
        RpcAsyncUploadPrinterDriverPackage RpcAsyncGetCorePrinterDrivers
        RpcAsyncCorePrinterDriverInstalled RpcAsyncGetPrinterDriverPackagePath
        RpcAsyncDeletePrinterDriverPackage RpcAsyncReadPrinter RpcAsyncResetPrinter
        RpcAsyncGetJobNamedPropertyValue RpcAsyncSetJobNamedProperty
        RpcAsyncDeleteJobNamedProperty RpcAsyncEnumJobNamedProperties
        RpcAsyncLogJobInfoForBranchOffice
        """),
        "win32",
    ),
    Interface("efsrpc", "df1941c5-fe89-4e79-bf10-463657acf44d", "1.0", _EFSRPC, "win32"),
    # The same EFSRPC methods, reached through \pipe\lsarpc under another UUID (PetitPotam).
    Interface("efsrpc", "c681d488-d850-11d0-8c52-00c04fd90f7e", "1.0", _EFSRPC, "win32"),
    Interface(
        "drsuapi",
        "e3514235-4b06-11d1-ab04-00c04fc2dcd2",
        "4.0",
        _ops("""
        DRSBind DRSUnbind DRSReplicaSync DRSGetNCChanges DRSUpdateRefs DRSReplicaAdd
        DRSReplicaDel DRSReplicaModify DRSVerifyNames DRSGetMemberships DRSInterDomainMove
        DRSGetNT4ChangeLog DRSCrackNames DRSWriteSPN DRSRemoveDsServer DRSRemoveDsDomain
        DRSDomainControllerInfo DRSAddEntry DRSExecuteKCC DRSGetReplInfo DRSAddSidHistory
        DRSGetMemberships2 DRSReplicaVerifyObjects DRSGetObjectExistence DRSQuerySitesByCost
        DRSInitDemotion DRSReplicaDemotion DRSFinishDemotion DRSAddCloneDC DRSWriteNgcKey
        DRSReadNgcKey
        """),
        "win32",
    ),
    Interface(
        "epmapper",
        "e1af8308-5d1f-11c9-91a4-08002b14a0fa",
        "3.0",
        _ops("""
        ept_insert ept_delete ept_lookup ept_map ept_lookup_handle_free ept_inq_object
        ept_mgmt_delete ept_map_auth ept_map_auth_async
        """),
        "win32",
    ),
    Interface(
        "eventlog",
        "82273fdc-e32a-18c3-3f78-827929dc23ea",
        "0.0",
        _ops("""
        ElfrClearELFW ElfrBackupELFW ElfrCloseEL ElfrDeregisterEventSource ElfrNumberOfRecords
        ElfrOldestRecord ElfrChangeNotify ElfrOpenELW ElfrRegisterEventSourceW ElfrOpenBELW
        ElfrReadELW ElfrReportEventW ElfrClearELFA ElfrBackupELFA ElfrOpenELA
        ElfrRegisterEventSourceA ElfrOpenBELA ElfrReadELA ElfrReportEventA ElfrRegisterClusterSvc
        ElfrDeregisterClusterSvc ElfrWriteClusterEvents ElfrGetLogInformation ElfrFlushEL
        ElfrReportEventAndSourceW
        """),
        "ntstatus",
    ),
    Interface(
        "even6",
        "f6beaff7-1e19-4fbb-9f8f-b89e2018337c",
        "1.0",
        _ops("""
        EvtRpcRegisterRemoteSubscription EvtRpcRemoteSubscriptionNextAsync
        EvtRpcRemoteSubscriptionNext EvtRpcRemoteSubscriptionWaitAsync
        EvtRpcRegisterControllableOperation EvtRpcRegisterLogQuery EvtRpcClearLog
        EvtRpcExportLog EvtRpcLocalizeExportLog EvtRpcMessageRender EvtRpcMessageRenderDefault
        EvtRpcQueryNext EvtRpcQuerySeek EvtRpcClose EvtRpcCancel EvtRpcAssertConfig
        EvtRpcRetractConfig EvtRpcOpenLogHandle EvtRpcGetLogFileInfo EvtRpcGetChannelList
        EvtRpcGetChannelConfig EvtRpcPutChannelConfig EvtRpcGetPublisherList
        EvtRpcGetPublisherListForChannel EvtRpcGetPublisherMetadata
        EvtRpcGetPublisherResourceMetadata EvtRpcGetEventMetadataEnum EvtRpcGetNextEventMetadata
        EvtRpcGetClassicLogDisplayName
        """),
        "win32",
    ),
    # MS-DCOM activation. Wireshark calls 000001a0 "ISystemActivator"; MS-DCOM and Zeek
    # "IRemoteSCMActivator": one interface.
    Interface(
        "IRemoteSCMActivator",
        "000001a0-0000-0000-c000-000000000046",
        "0.0",
        _ops("- - - RemoteGetClassObject RemoteCreateInstance"),
        "hresult",
    ),
    Interface(
        "IActivation",
        "4d9f4ab8-7d1c-11cf-861e-0020af6e7c57",
        "0.0",
        _ops("RemoteActivation"),
        "hresult",
    ),
    Interface(
        "IObjectExporter",
        "99fcfec4-5260-101b-bbcb-00aa0021347a",
        "0.0",
        _ops("""
        ResolveOxid SimplePing ComplexPing ServerAlive ResolveOxid2 ServerAlive2
        """),
        "hresult",
    ),
    Interface(
        "IRemUnknown",
        "00000131-0000-0000-c000-000000000046",
        "0.0",
        _ops(_IUNKNOWN + "RemQueryInterface RemAddRef RemRelease"),
        "hresult",
    ),
    Interface(
        "IRemUnknown2",
        "00000143-0000-0000-c000-000000000046",
        "0.0",
        _ops(_IUNKNOWN + "RemQueryInterface RemAddRef RemRelease RemQueryInterface2"),
        "hresult",
    ),
    Interface(
        "IWbemLevel1Login",
        "f309ad18-d86a-11d0-a075-00c04fb68820",
        "0.0",
        _ops(_IUNKNOWN + "EstablishPosition RequestChallenge WBEMLogin NTLMLogin"),
        "hresult",
    ),
    Interface(
        "IWbemServices",
        "9556dc99-828c-11cf-a37e-00aa003240c7",
        "0.0",
        _ops(
            _IUNKNOWN
            + """
        OpenNamespace CancelAsyncCall QueryObjectSink GetObject GetObjectAsync PutClass
        PutClassAsync DeleteClass DeleteClassAsync CreateClassEnum CreateClassEnumAsync
        PutInstance PutInstanceAsync DeleteInstance DeleteInstanceAsync CreateInstanceEnum
        CreateInstanceEnumAsync ExecQuery ExecQueryAsync ExecNotificationQuery
        ExecNotificationQueryAsync ExecMethod ExecMethodAsync
        """
        ),
        "hresult",
    ),
    Interface(
        "ISeclogon",
        "12b81e99-f207-4a4c-85d3-77b42f76fd14",
        "1.0",
        _ops("SeclCreateProcessWithLogonW SeclCreateProcessWithLogonExW"),
        "win32",
    ),
    Interface(
        "InitShutdown",
        "894de0c0-0d55-11d3-a322-00c04fa321a1",
        "1.0",
        _ops("BaseInitiateShutdown BaseAbortShutdown BaseInitiateShutdownEx"),
        "win32",
    ),
    Interface(
        "WindowsShutdown",
        "d95afe70-a6d5-4259-822e-2c84da1ddb0d",
        "1.0",
        _ops("WsdrInitiateShutdown WsdrAbortShutdown"),
        "win32",
    ),
    Interface(
        "dssetup",
        "3919286a-b10c-11d0-9ba8-00c04fd92ef5",
        "0.0",
        _ops("""
        DsRolerGetPrimaryDomainInformation DsRolerDnsNameToFlatName DsRolerDcAsDc
        DsRolerDcAsReplica DsRolerDemoteDc DsRolerGetDcOperationProgress
        DsRolerGetDcOperationResults DsRolerCancel DsRolerServerSaveStateForUpgrade
        DsRolerUpgradeDownlevelServer DsRolerAbortDownlevelServerUpgrade
        """),
        "win32",
    ),
    Interface(
        "BackupKey", "3dde7c30-165d-11d1-ab8f-00805f14db40", "1.0", _ops("BackuprKey"), "win32"
    ),
    Interface(
        "netdfs",
        "4fc742e0-4a10-11cf-8273-00aa004ae673",
        "3.0",
        _ops("""
        NetrDfsManagerGetVersion NetrDfsAdd NetrDfsRemove NetrDfsSetInfo NetrDfsGetInfo
        NetrDfsEnum NetrDfsRename NetrDfsMove NetrDfsManagerGetConfigInfo
        NetrDfsManagerSendSiteInfo NetrDfsAddFtRoot NetrDfsRemoveFtRoot NetrDfsAddStdRoot
        NetrDfsRemoveStdRoot NetrDfsManagerInitialize NetrDfsAddStdRootForced
        NetrDfsGetDcAddress NetrDfsSetDcAddress NetrDfsFlushFtTable NetrDfsAdd2 NetrDfsRemove2
        NetrDfsEnumEx NetrDfsSetInfo2 NetrDfsAddRootTarget NetrDfsRemoveRootTarget
        NetrDfsGetSupportedNamespaceVersion
        """),
        "win32",
    ),
    Interface(
        "mgmt",
        "afa8bd80-7d8a-11c9-bef4-08002b102989",
        "1.0",
        _ops("""
        inq_if_ids inq_stats is_server_listening stop_server_listening inq_princ_name
        """),
        "win32",
    ),
)

INTERFACES: dict[str, Interface] = {interface.uuid: interface for interface in _TABLE}

# Well-known pipe → the interface nearly always bound on it: names calls on a pipe whose BIND
# was not captured (Zeek's pipe_name_to_common_uuid, widened).
PIPE_INTERFACES: dict[str, Interface] = {
    pipe: INTERFACES[uuid]
    for pipe, uuid in {
        "svcctl": "367abb81-9844-35f1-ad32-98f038001003",
        "ntsvcs": "367abb81-9844-35f1-ad32-98f038001003",
        "atsvc": "1ff70682-0a51-30e8-076d-740be8cee98b",
        "winreg": "338cd001-2244-31f1-aaaa-900038001003",
        "srvsvc": "4b324fc8-1670-01d3-1278-5a47bf6ee188",
        "wkssvc": "6bffd098-a112-3610-9833-46c3f87e345a",
        "samr": "12345778-1234-abcd-ef00-0123456789ac",
        "lsarpc": "12345778-1234-abcd-ef00-0123456789ab",
        "netlogon": "12345678-1234-abcd-ef00-01234567cffb",
        "spoolss": "12345678-1234-abcd-ef00-0123456789ab",
        "efsrpc": "df1941c5-fe89-4e79-bf10-463657acf44d",
        "eventlog": "82273fdc-e32a-18c3-3f78-827929dc23ea",
        "epmapper": "e1af8308-5d1f-11c9-91a4-08002b14a0fa",
    }.items()
}


def interface_for(uuid: str) -> Interface | None:
    """The interface with abstract syntax ``uuid`` (lower-case text form), if known."""
    return INTERFACES.get(uuid)


def transfer_syntax_name(uuid: str) -> str:
    """``NDR``, ``NDR64``, ``bind_time_features`` or the UUID itself."""
    if uuid == NDR_UUID:
        return "NDR"
    if uuid == NDR64_UUID:
        return "NDR64"
    if uuid.startswith(BIND_TIME_FEATURE_PREFIX):
        return "bind_time_features"
    return uuid
